"""Checkpoints of the plugin's own earlier layout (version 0.1.0) -> today's.

Version 0.1.0 kept the object queries on the detector itself; they now live
in the query-scheme submodule ``queries`` (``PluginDETRQueries`` or
``PluginAnchorPointQueries``). Nothing else moved::

    0.1.0                                    now
    query_embedding.weight  [G*N, d]         queries.embedding.weight
    anchor_embedding.weight  [G*N, 2]        queries.anchors.weight
    anchor_pos_mlp.{0,2}.{weight,bias}       queries.pos_mlp.{0,2}.{weight,bias}

``PluginDETR`` calls :func:`upgrade_plugin_state_dict` when it loads a state
dict, so 0.1.0 checkpoints load as they are.
"""
from collections import OrderedDict
from typing import List, Mapping, Tuple, TypeVar

from .rename import PARAM, RenameTable

Value = TypeVar('Value')

# (today's name, the 0.1.0 name)
LEGACY_TABLE = RenameTable(
    [
        ('queries.embedding.weight', 'query_embedding.weight'),
        ('queries.anchors.weight', 'anchor_embedding.weight'),
        ('queries.pos_mlp.{fc}.{p}', 'anchor_pos_mlp.{fc}.{p}'),
    ],
    placeholders=dict(fc=r'0|2', p=PARAM))


def upgrade_plugin_state_dict(state_dict: Mapping[str, Value], prefix: str = ''
                              ) -> Tuple['OrderedDict[str, Value]', List[str]]:
    """Rename the 0.1.0 query keys of a ``PluginDETR`` state dict to today's.

    Only keys that start with ``prefix`` are looked at, and only the part
    after it is renamed, so the detector can upgrade its own entries of a
    larger state dict (``prefix`` as ``_load_from_state_dict`` gets it, e.g.
    ``''`` or ``'module.'``). Every other key, today's names included, is
    kept as it is, in place.

    Example::

        >>> new, renamed = upgrade_plugin_state_dict(
        ...     {'module.query_embedding.weight': 1, 'module.neck.proj.bias': 2,
        ...      'query_embedding.weight': 3}, prefix='module.')
        >>> for key, value in new.items():
        ...     print(key, value)
        module.queries.embedding.weight 1
        module.neck.proj.bias 2
        query_embedding.weight 3
        >>> renamed
        ['module.query_embedding.weight']

    Args:
        state_dict (Mapping[str, Value]): keys in the 0.1.0 or today's
            layout (values are not touched: tensors are shared).
        prefix (str): the detector's prefix in ``state_dict``. Defaults to
            ``''``.

    Returns:
        tuple[OrderedDict[str, Value], list[str]]: the state dict in
        today's names, same order (with the ``_metadata`` of a
        ``state_dict()`` result carried over), and the old names of the
        renamed entries, in order (empty for a state dict of today's
        layout).

    Raises:
        ValueError: a 0.1.0 key whose new name is also present (the same
            weights twice, in two layouts).
    """
    new_state: 'OrderedDict[str, Value]' = OrderedDict()
    renamed: List[str] = []
    for key, value in state_dict.items():
        new_key = key
        if key.startswith(prefix):
            upgraded = LEGACY_TABLE.to_plugin(key[len(prefix):])
            if upgraded is not None:
                new_key = prefix + upgraded
                if new_key in state_dict:
                    raise ValueError(f'the state dict has both {key!r} (plugin 0.1.0 layout) '
                                     f'and {new_key!r} (its new name): keep one')
                renamed.append(key)
        new_state[new_key] = value
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        new_state._metadata = metadata  # type: ignore[attr-defined]
    return new_state, renamed

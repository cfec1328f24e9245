"""Convert state dicts between the plugin's ``PluginDETR`` and mmdet 3.3's ``DETR``.

The two models compute the same function; only parameter names differ
(``i`` a layer index, ``coder`` ``encoder`` or ``decoder``)::

    plugin                                   mmdet 3.x DETR
    neck.proj.*                              neck.convs.0.conv.*  (ChannelMapper)
    queries.embedding.weight  [N, d]         query_embedding.weight
    coder.layers.i.self_attn.*               coder.layers.i.self_attn.attn.*
    decoder.layers.i.cross_attn.*            decoder.layers.i.cross_attn.attn.*
    coder.layers.i.ffn.linear1.*             coder.layers.i.ffn.layers.0.0.*
    coder.layers.i.ffn.linear2.*             coder.layers.i.ffn.layers.1.*
    coder.layers.i.norm{1,2,3}.*             coder.layers.i.norms.{0,1,2}.*
    decoder.norm.*                           decoder.post_norm.*
    bbox_head.bbox_mlp.{0,1}.*               bbox_head.reg_ffn.layers.0.0.*, reg_ffn.layers.1.*
    bbox_head.bbox_mlp.2.*                   bbox_head.fc_reg.*

``backbone.*``, ``bbox_head.fc_cls.*`` and ``data_preprocessor.*`` keep
their names. A decoder without self-attention maps ``norm2, norm3`` the same
way (mmdet has no such model). A pre-norm encoder's final ``encoder.norm``
and anchor-point queries have no mmdet counterpart and are refused.

Checkpoints of the original DETR release: :mod:`.original`; transformers:
:mod:`.hf`.
"""
from collections import OrderedDict
from typing import Mapping

from torch import Tensor

from .rename import ATTN_PARAM, PARAM, RenameTable, listed

MMDET_TABLE = RenameTable(
    [
        ('neck.proj.{p}', 'neck.convs.0.conv.{p}'),
        ('queries.embedding.weight', 'query_embedding.weight'),
        ('{coder}.layers.{i}.{attn}.{attn_p}', '{coder}.layers.{i}.{attn}.attn.{attn_p}'),
        ('{coder}.layers.{i}.ffn.linear1.{p}', '{coder}.layers.{i}.ffn.layers.0.0.{p}'),
        ('{coder}.layers.{i}.ffn.linear2.{p}', '{coder}.layers.{i}.ffn.layers.1.{p}'),
        ('{coder}.layers.{i}.norm1.{p}', '{coder}.layers.{i}.norms.0.{p}'),
        ('{coder}.layers.{i}.norm2.{p}', '{coder}.layers.{i}.norms.1.{p}'),
        ('decoder.layers.{i}.norm3.{p}', 'decoder.layers.{i}.norms.2.{p}'),
        ('decoder.norm.{p}', 'decoder.post_norm.{p}'),
        ('bbox_head.bbox_mlp.0.{p}', 'bbox_head.reg_ffn.layers.0.0.{p}'),
        ('bbox_head.bbox_mlp.1.{p}', 'bbox_head.reg_ffn.layers.1.{p}'),
        ('bbox_head.bbox_mlp.2.{p}', 'bbox_head.fc_reg.{p}'),
    ],
    placeholders=dict(coder=r'(?:en|de)coder', attn=r'self_attn|cross_attn', i=r'\d+',
                      p=PARAM, attn_p=ATTN_PARAM, tail=r'.+'),
    shared=['backbone.{tail}', 'bbox_head.fc_cls.{p}', 'data_preprocessor.{tail}'])

# plugin keys with no counterpart in mmdet's DETR, and why
_NO_COUNTERPART = (
    ('encoder.norm.', "encoder.norm.* (a pre-norm encoder) has no counterpart in mmdet's DETR"),
    ('queries.anchors.', 'queries.anchors.* and queries.pos_mlp.* (anchor-point queries, '
     "PluginAnchorPointQueries) have no counterpart in mmdet's DETR"),
)


def _rename(state_dict: Mapping[str, Tensor], to: str, source: str) -> 'OrderedDict[str, Tensor]':
    """Rename by :data:`MMDET_TABLE`; a KeyError lists the keys it does not know."""
    renamed, unmatched = MMDET_TABLE.rename(state_dict, to=to)
    if unmatched:
        raise KeyError(f'{len(unmatched)} key(s) are not part of a {source} DETR state dict: '
                       f'{listed(unmatched)}')
    return renamed


def plugin_to_mmdet(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """``PluginDETR`` state dict -> mmdet ``DETR`` state dict.

    Args:
        state_dict (Mapping[str, Tensor]): a ``PluginDETR`` state dict of a
            post-norm encoder, plain learned queries and a box MLP of three
            linears (mmdet's ``DETRHead``).

    Returns:
        OrderedDict[str, Tensor]: mmdet's names, same order, tensors shared.

    Raises:
        KeyError: keys without an mmdet counterpart, named.
    """
    for prefix, why in _NO_COUNTERPART:
        if any(k.startswith(prefix) for k in state_dict):
            raise KeyError(why)
    mlp = sorted({k.split('.')[2] for k in state_dict if k.startswith('bbox_head.bbox_mlp.')})
    if mlp and mlp != ['0', '1', '2']:
        raise KeyError(f'bbox_head.bbox_mlp has linears {mlp}: mmdet\'s DETRHead has three '
                       '(reg_ffn.layers.0.0, reg_ffn.layers.1, fc_reg): num_reg_fcs=2')
    return _rename(state_dict, 'other', 'PluginDETR')


def mmdet_to_plugin(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """mmdet ``DETR`` state dict -> ``PluginDETR`` state dict.

    Args:
        state_dict (Mapping[str, Tensor]): an mmdet 3.x ``DETR`` state dict.

    Returns:
        OrderedDict[str, Tensor]: the plugin's names, same order, tensors
        shared.

    Raises:
        KeyError: keys that are not part of mmdet's DETR, named.
    """
    return _rename(state_dict, 'plugin', 'mmdet')

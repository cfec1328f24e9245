"""Config helpers shared by the plugin's tools."""
from typing import Any

from mmengine.config import Config


def _replace_prefix(node: Any, old: str, new: str, keys: tuple) -> Any:
    """Recursively replace the ``old`` path prefix by ``new`` in string
    values under the given keys."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str) and value.startswith(old):
                node[key] = new + value[len(old):]
            else:
                _replace_prefix(value, old, new, keys)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _replace_prefix(item, old, new, keys)
    return node


def apply_data_root(cfg: Config, data_root: str, old_root: str) -> None:
    """Move every data set and evaluator of ``cfg`` from ``old_root`` to
    ``data_root``.

    A config's ``data_root`` variable is substituted into the data set dicts
    when the file is read, so overriding the variable alone
    (``--cfg-options data_root=...``) would leave them pointing at the old
    place; this rewrites the ``data_root`` and ``ann_file`` entries that
    start with the old root (and the panoptic metric's ``seg_prefix``).
    """
    if not old_root or old_root == data_root:
        return
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                 'val_evaluator', 'test_evaluator'):
        if name in cfg:
            _replace_prefix(cfg[name], old_root, data_root, ('data_root', 'ann_file', 'seg_prefix'))


def merge_options(cfg: Config, options: dict, merge=Config.merge_from_dict) -> None:
    """``cfg.merge_from_dict(options)``, with a ``data_root`` option carried
    into the data sets and evaluators (:func:`apply_data_root`). ``merge`` is
    the merging function to call (mmengine's, unless it is being wrapped)."""
    old_root = cfg.get('data_root')
    merge(cfg, options)
    if 'data_root' in options:
        apply_data_root(cfg, options['data_root'], old_root)

"""Checks the tools run on a config before training or testing starts.

Each failure is one error that names the config key or file at fault,
raised before any model is built or data is read, instead of a traceback
from deep inside a run (or, worse, a run that trains on the wrong classes).
"""
import json
import os.path as osp
from typing import Any, Iterator, List, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

PLUGIN = 'mmdet_detr_plugin'
IMPORT_LINE = "custom_imports = dict(imports=['mmdet_detr_plugin'], allow_failed_imports=False)"


def _types(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield node['type']
        for value in node.values():
            yield from _types(value)
    elif isinstance(node, (list, tuple)):
        for item in node:
            yield from _types(item)


def check_custom_imports(cfg: Config, config_path: str) -> None:
    """A config naming the plugin's modules must import the plugin."""
    used = sorted({t for t in _types(cfg._cfg_dict.to_dict()) if t.startswith('Plugin')})
    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    if isinstance(imports, str):
        imports = [imports]
    if used and PLUGIN not in imports:
        raise ValueError(f'{config_path} uses {", ".join(used)} but does not load the plugin: '
                         f'add the line\n    {IMPORT_LINE}\nto the config')


def _leaves(key: str, dataset: dict) -> Iterator[Tuple[str, dict]]:
    """The data sets inside wrappers: ``dataset`` of a RepeatDataset (or any
    wrapper of one), each of ``datasets`` of a ConcatDataset, with their keys."""
    if isinstance(dataset.get('datasets'), (list, tuple)) and 'ann_file' not in dataset:
        for i, inner in enumerate(dataset['datasets']):
            yield from _leaves(f'{key}.datasets[{i}]', inner)
    elif isinstance(dataset.get('dataset'), dict) and 'ann_file' not in dataset:
        yield from _leaves(f'{key}.dataset', dataset['dataset'])
    else:
        yield key, dataset


def _datasets(cfg: Config, stage: str) -> List[Tuple[str, dict]]:
    """The data sets a stage reads, wrappers opened, each with its config key."""
    keys = ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else [])
    if stage == 'test':
        keys = ['test_dataloader']
    found = []
    for key in keys:
        loader = cfg.get(key)
        if loader and loader.get('dataset'):
            found.extend(_leaves(f'{key}.dataset', loader['dataset']))
    return found


def _resolve(data_root: str, path: str) -> str:
    return path if not data_root or osp.isabs(path) else osp.join(data_root, path)


def _class_names(dataset: dict) -> Tuple[str, ...]:
    metainfo = dataset.get('metainfo') or {}
    if metainfo.get('classes'):
        return tuple(metainfo['classes'])
    from mmdet.registry import DATASETS
    cls = DATASETS.get(dataset.get('type', ''))
    return tuple(getattr(cls, 'METAINFO', {}).get('classes', ()))


def check_datasets(cfg: Config, stage: str = 'train') -> None:
    """Annotation files and image folders exist; the class count fits the model."""
    num_classes = (cfg.get('model') or {}).get('bbox_head', {}).get('num_classes')
    for key, dataset in _datasets(cfg, stage):
        data_root = dataset.get('data_root') or ''
        if dataset.get('ann_file'):
            path = _resolve(data_root, dataset['ann_file'])
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'{key}.ann_file: annotation file not found: {path} (data_root='
                    f'{data_root!r}; set it with --cfg-options data_root=/path/to/data/)')
        img_dir = (dataset.get('data_prefix') or {}).get('img')
        if img_dir is not None:
            path = _resolve(data_root, img_dir)
            if not osp.isdir(path):
                raise FileNotFoundError(f'{key}.data_prefix.img: image folder not found: {path}')
        classes = _class_names(dataset)
        if num_classes is not None and classes and num_classes != len(classes):
            message = (f'model.bbox_head.num_classes={num_classes} but {key} has '
                       f'{len(classes)} classes ({", ".join(classes[:5])}'
                       f'{", ..." if len(classes) > 5 else ""})')
            if num_classes < len(classes):
                raise ValueError(message + f': set model.bbox_head.num_classes={len(classes)}')
            print_log(message + ': the extra outputs are never trained', logger='current')


def name_corrupt_annotation(cfg: Config, error: json.JSONDecodeError, stage: str) -> None:
    """Re-raise a JSON error from a data set with the file that caused it."""
    for key, dataset in _datasets(cfg, stage):
        if not str(dataset.get('ann_file', '')).endswith('.json'):  # VOC's: lists of ids
            continue
        path = _resolve(dataset.get('data_root') or '', dataset['ann_file'])
        try:
            with open(path) as f:
                json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{key}.ann_file: {path} is not valid JSON ({err})') from error
    raise error


# Config types that import panopticapi when built (mmdet's metric and loader, and ours).
PANOPTIC_TYPES = ('CocoPanopticMetric', 'LoadPanopticAnnotations',
                  'PluginLoadPanopticAnnotations')


def check_panopticapi(cfg: Config, config_path: str = 'the config') -> None:
    """A config naming a panoptic metric or loader needs panopticapi installed."""
    used = sorted({t for t in _types(cfg._cfg_dict.to_dict()) if t in PANOPTIC_TYPES})
    if not used:
        return
    try:
        import panopticapi  # noqa: F401
    except ImportError as err:
        from mmdet_detr_plugin.datasets.transforms.panoptic import PANOPTICAPI_INSTALL
        raise ImportError(f'{config_path} uses {", ".join(used)}, which needs panopticapi; '
                          f'it is not installed: {PANOPTICAPI_INSTALL}') from err

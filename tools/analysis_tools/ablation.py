"""Train variants of a DETR config on the same data with the same budget, and
tabulate what each part of DETR does.

    python tools/analysis_tools/ablation.py configs/detr_r18_toy.py \\
        --budget 1400 --work-dir work_dirs/ablation [--variants full,queries-1,...] \\
        [--evals 4] [--seed 0] [--data-root data/toy/] [--dup-score-thr 0.3] \\
        [--cfg-options k=v ...] [--force] [--report-only]

Each variant is a function that edits a copy of the config (after
``--cfg-options`` and ``--data-root``). Every variant then gets the same
budget: ``train_cfg.max_iters = budget``, validation every
``ceil(budget / evals)`` steps and at the end (``evals`` points when
``evals`` divides the budget), the warm-up (``LinearLR`` from step 0) cut to
``min(its length, budget // 10)`` steps, ``milestones`` scaled by
``budget / max_iters`` (the toy config's 0.8 * max_iters becomes
0.8 * budget), a scheduler ending at ``max_iters`` ending at the budget, one
checkpoint at the end and ``randomness.seed = --seed``. The edited config is
written to ``WORK_DIR/VARIANT/config.py`` and trained by ``tools/train.py``
in its own process, exactly as a user would run it.

Variants (a variant that does not apply to the config is skipped, and says
why):

* ``full``: the config as given.
* ``queries-1``: ``model.num_queries = 1``.
* ``queries-max``: ``model.num_queries = M``, the most objects (non-crowd
  annotations) in one image of the training annotations: the fewest queries
  that can still match every object.
* ``queries-2x``, ``queries-10x``: ``model.num_queries = 2 M`` and ``10 M``.
  The ``queries-*`` variants lower ``model.test_cfg.max_per_img`` to the
  number of queries when it is larger, and are skipped when the number is
  the config's own.
* ``no-self-attn``: ``model.decoder.self_attn = False``: the queries no
  longer see each other in the decoder (DETR paper, 3.2: what lets the set
  prediction remove duplicates without NMS).
* ``no-aux``: ``model.bbox_head.criterion.aux_loss = False``: only the last
  decoder layer is supervised (DETR paper, 3.2, auxiliary decoding losses).
* ``no-groups``: the matching scheme's ``num_groups = 1`` (no Group DETR).
* ``no-anchors``: the matching scheme ``PluginAnchorPointQueries`` (or
  ``PluginAnchorBoxQueries``) becomes ``PluginDETRQueries`` with the same
  ``num_groups`` (its ``positional_encoding`` dropped): DETR's learned
  queries instead of reference points.
* ``no-focal``: ``model.bbox_head.criterion`` gets ``cls_loss='ce'``,
  ``loss_cls_weight=1.0``, ``no_object_weight=0.1`` and the assigner's
  ``PluginFocalLossCost`` becomes ``dict(type='PluginClassificationCost',
  weight=1.0)``: DETR's softmax cross-entropy and class cost.
* ``no-dn``: ``model.queries`` (a denoising wrapper,
  ``PluginDenoisingQueries``) becomes the matching scheme it wraps,
  ``model.queries.queries``.
* ``no-proposals``: the matching scheme ``PluginProposalQueries`` becomes
  ``PluginAnchorBoxQueries`` (learned anchor boxes instead of the encoder
  head's best proposals; the encoder head still trains).
* ``no-encoder-head``: ``model.encoder_head = None`` (and ``no-proposals``,
  whose boxes come from it).
* ``detr``: every aid removed, the plain DETR recipe: ``no-encoder-head``, ``no-dn``,
  ``no-anchors``, ``no-groups`` and ``no-focal`` where they apply, and
  self-attention and auxiliary losses switched back on if the config had
  them off. The backbone, widths, optimiser and schedule stay the config's.

The matching scheme is ``model.queries``, or ``model.queries.queries`` when
``model.queries`` is a denoising wrapper (:func:`matching_scheme`).

After training, the final checkpoint predicts the val set and the
duplicates are counted: pairs of predictions in one image with score >=
``--dup-score-thr`` (default 0.3; the scores are the head's, sigmoid with a
focal loss and softmax with cross-entropy), the same class and IoU > 0.7
(:func:`count_duplicates`), per 100 images; with the mean number of kept
predictions per image.

Outputs in WORK_DIR: ``ablation.json`` (per variant: the edited settings,
the run's settings, the mAP curve [[step, mAP], ...] read from the run's
``vis_data/scalars.json``, the final mAP and AP50, duplicates per 100 images,
kept predictions per image, training seconds (the wall time of
``tools/train.py``, validation included) and steps; skipped variants with
their reason; failed ones with their log), ``ablation.md`` (the table, also
printed) and ``ablation.png`` (mAP against steps, one line per variant).
A variant already in ``ablation.json`` is not trained again unless
``--force`` (and is refused if it was trained with other settings);
``--report-only`` rebuilds the table and plot from ``ablation.json``
(``--merge DIR ...`` adds the variants of other work dirs, trained by
parallel processes); ``--doc FILE`` writes the table into the file's
``<!-- ablation -->`` block.
"""
import argparse
import contextlib
import copy
import io
import json
import math
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, TOOLS)
from _openmp import passive_wait_policy  # noqa: E402

passive_wait_policy()  # before torch loads OpenMP (tools/_openmp.py)

from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402
from train import load_config  # noqa: E402

TRAIN = osp.join(TOOLS, 'train.py')
DUP_IOU = 0.7  # IoU above which two same-class predictions count as one object found twice
ANCHOR_SCHEMES = ('PluginAnchorPointQueries', 'PluginAnchorBoxQueries')


class NotApplicable(Exception):
    """A variant that does not apply to the config; the message says why."""


# ---------------------------------------------------------------- config edits
def get_key(cfg, key: str, default=KeyError):
    """``cfg`` at a dotted key (list items by index, e.g.
    ``model.train_cfg.assigner.match_costs.0``)."""
    node = cfg
    for part in key.split('.'):
        try:
            node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
        except (KeyError, IndexError, ValueError):
            if default is KeyError:
                raise KeyError(f'the config has no {key}')
            return default
    return node


def set_key(cfg, key: str, value) -> str:
    """Set ``cfg`` at a dotted key; return the key."""
    parent, _, last = key.rpartition('.')
    node = get_key(cfg, parent) if parent else cfg
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return key


def matching_scheme(cfg: Config) -> Tuple[Optional[ConfigDict], str]:
    """The matching query scheme's dict and its dotted key: ``model.queries``,
    or ``model.queries.queries`` when ``model.queries`` wraps a scheme (a
    denoising wrapper). ``(None, 'model.queries')`` without ``model.queries``
    (``PluginDETR``'s default, ``PluginDETRQueries`` without groups)."""
    queries = cfg.model.get('queries')
    if queries is None:
        return None, 'model.queries'
    if 'queries' in queries:
        return queries.queries, 'model.queries.queries'
    return queries, 'model.queries'


def train_ann_file(cfg: Config) -> str:
    """The training annotation file (data_root joined, through dataset
    wrappers such as ``RepeatDataset``)."""
    dataset = cfg.train_dataloader.dataset
    while 'ann_file' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset
    if 'ann_file' not in dataset:
        raise KeyError('train_dataloader.dataset has no ann_file: queries-max needs the '
                       'training annotations')
    return osp.join(dataset.get('data_root') or '', dataset.ann_file)


def max_objects_per_image(ann_file: str) -> int:
    """The most non-crowd annotations on one image of a COCO json."""
    with open(ann_file) as f:
        coco = json.load(f)
    if not coco.get('images'):
        raise ValueError(f'{ann_file}: no images')
    counts = defaultdict(int)
    for ann in coco.get('annotations', []):
        if not ann.get('iscrowd', 0):
            counts[ann['image_id']] += 1
    return max(counts.values(), default=0)


def _set_num_queries(cfg: Config, num: int, what: str) -> List[str]:
    if num < 1:
        raise NotApplicable(f'{what} is {num} ({train_ann_file(cfg)} has no object)')
    if num == cfg.model.get('num_queries', 100):
        raise NotApplicable(f'{what} is {num}, the config\'s model.num_queries (same as full)')
    keys = [set_key(cfg, 'model.num_queries', num)]
    if get_key(cfg, 'model.test_cfg.max_per_img', 0) > num:
        keys.append(set_key(cfg, 'model.test_cfg.max_per_img', num))
    return keys


def _queries_times(factor: int, what: str) -> Callable[[Config], List[str]]:
    def edit(cfg: Config) -> List[str]:
        ann_file = train_ann_file(cfg)
        if not osp.isfile(ann_file):
            raise FileNotFoundError(f'{ann_file} (train_dataloader.dataset.ann_file) not found: '
                                    'the queries-max/2x/10x variants count its objects per '
                                    'image (pass --data-root?)')
        return _set_num_queries(cfg, factor * max_objects_per_image(ann_file), what)
    return edit


def no_self_attn(cfg: Config) -> List[str]:
    if not cfg.model.decoder.get('self_attn', True):
        raise NotApplicable('model.decoder.self_attn is already False')
    return [set_key(cfg, 'model.decoder.self_attn', False)]


def no_aux(cfg: Config) -> List[str]:
    if not get_key(cfg, 'model.bbox_head.criterion.aux_loss', True):
        raise NotApplicable('model.bbox_head.criterion.aux_loss is already False')
    return [set_key(cfg, 'model.bbox_head.criterion.aux_loss', False)]


def no_groups(cfg: Config) -> List[str]:
    scheme, key = matching_scheme(cfg)
    if scheme is None or scheme.get('num_groups', 1) == 1:
        raise NotApplicable(f'{key} has no query groups (num_groups 1)')
    return [set_key(cfg, f'{key}.num_groups', 1)]


def no_anchors(cfg: Config) -> List[str]:
    scheme, key = matching_scheme(cfg)
    if scheme is None or scheme.get('type') not in ANCHOR_SCHEMES:
        raise NotApplicable(f'{key}.type is not one of {", ".join(ANCHOR_SCHEMES)}')
    plain = {k: v for k, v in scheme.items() if k not in ('type', 'positional_encoding')}
    return [set_key(cfg, key, dict(type='PluginDETRQueries', **plain))]


def no_focal(cfg: Config) -> List[str]:
    criterion = 'model.bbox_head.criterion'
    if get_key(cfg, f'{criterion}.cls_loss', 'ce') != 'focal':
        raise NotApplicable(f"{criterion}.cls_loss is not 'focal'")
    keys = [set_key(cfg, f'{criterion}.cls_loss', 'ce'),
            set_key(cfg, f'{criterion}.loss_cls_weight', 1.0),
            set_key(cfg, f'{criterion}.no_object_weight', 0.1)]
    costs = 'model.train_cfg.assigner.match_costs'
    for i, cost in enumerate(get_key(cfg, costs, [])):
        if cost.get('type') == 'PluginFocalLossCost':
            keys.append(set_key(cfg, f'{costs}.{i}',
                                dict(type='PluginClassificationCost', weight=1.0)))
    return keys


def no_dn(cfg: Config) -> List[str]:
    queries = cfg.model.get('queries')
    if queries is None or 'queries' not in queries:
        raise NotApplicable('model.queries wraps no matching scheme (no denoising)')
    return [set_key(cfg, 'model.queries', queries.queries)]


def no_proposals(cfg: Config) -> List[str]:
    scheme, key = matching_scheme(cfg)
    if scheme is None or scheme.get('type') != 'PluginProposalQueries':
        raise NotApplicable(f'{key}.type is not PluginProposalQueries')
    return [set_key(cfg, key, dict(scheme, type='PluginAnchorBoxQueries'))]


def no_encoder_head(cfg: Config) -> List[str]:
    if cfg.model.get('encoder_head') is None:
        raise NotApplicable('model.encoder_head is not set')
    keys = []
    try:
        keys += no_proposals(cfg)  # the proposals come from the head
    except NotApplicable:
        pass
    return keys + [set_key(cfg, 'model.encoder_head', None)]


def plain_detr(cfg: Config) -> List[str]:
    keys = []
    for edit in (no_encoder_head, no_dn, no_anchors, no_groups, no_focal):
        try:
            keys += edit(cfg)
        except NotApplicable:
            pass
    if not cfg.model.decoder.get('self_attn', True):
        keys.append(set_key(cfg, 'model.decoder.self_attn', True))
    if not get_key(cfg, 'model.bbox_head.criterion.aux_loss', True):
        keys.append(set_key(cfg, 'model.bbox_head.criterion.aux_loss', True))
    if not keys:
        raise NotApplicable('the config is the plain DETR recipe already')
    return keys


# name -> edit of a Config in place, returning the dotted keys it set
VARIANTS: Dict[str, Callable[[Config], List[str]]] = {
    'full': lambda cfg: [],
    'queries-1': lambda cfg: _set_num_queries(cfg, 1, 'queries-1'),
    'queries-max': _queries_times(1, 'the most objects per training image'),
    'queries-2x': _queries_times(2, '2x the most objects per training image'),
    'queries-10x': _queries_times(10, '10x the most objects per training image'),
    'no-self-attn': no_self_attn,
    'no-aux': no_aux,
    'no-groups': no_groups,
    'no-anchors': no_anchors,
    'no-focal': no_focal,
    'no-dn': no_dn,
    'no-proposals': no_proposals,
    'no-encoder-head': no_encoder_head,
    'detr': plain_detr,
}


def plain(value):
    """Config values as JSON values."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def make_variant(cfg: Config, name: str) -> Tuple[Config, dict]:
    """A copy of ``cfg`` edited by variant ``name``, and the settings it
    changed ({dotted key: new value}, a key under another one left out).
    Raises :class:`NotApplicable`."""
    if name not in VARIANTS:
        raise KeyError(f'unknown variant {name!r}; the variants are {", ".join(VARIANTS)}')
    cfg = copy.deepcopy(cfg)
    keys = list(dict.fromkeys(VARIANTS[name](cfg)))
    settings = {k: plain(get_key(cfg, k)) for k in keys
                if not any(k.startswith(other + '.') for other in keys)}
    return cfg, settings


def apply_budget(cfg: Config, budget: int, evals: int, seed: int) -> None:
    """Train ``budget`` steps, validate ``evals`` times, scale the schedule,
    save one checkpoint at the end, seed (module docstring)."""
    if cfg.train_cfg.get('type') != 'IterBasedTrainLoop':
        raise ValueError(f'train_cfg.type is {cfg.train_cfg.get("type")!r}: the ablation '
                         'trains iteration-based configs (IterBasedTrainLoop)')
    if budget < 1 or not 1 <= evals <= budget:
        raise ValueError(f'--budget ({budget}) must be >= 1 and --evals ({evals}) in '
                         f'[1, budget]')
    old_max = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = budget
    cfg.train_cfg.val_interval = math.ceil(budget / evals)
    schedulers = cfg.get('param_scheduler') or []
    for i, sched in enumerate([schedulers] if isinstance(schedulers, dict) else schedulers):
        if sched.get('by_epoch', True):
            raise ValueError(f'param_scheduler[{i}] ({sched.get("type")}) is by epoch: the '
                             'ablation scales iteration-based schedules (by_epoch=False)')
        if sched.get('type') == 'LinearLR' and sched.get('begin', 0) == 0:
            sched.end = min(sched.get('end', old_max), max(1, budget // 10))  # warm-up
        elif sched.get('end') == old_max:
            sched.end = budget
        if 'milestones' in sched:
            sched.milestones = [m * budget // old_max for m in sched.milestones]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=budget,
                                        max_keep_ckpts=1, save_last=True)
    logger = cfg.default_hooks.get('logger') or dict(type='LoggerHook')
    # metrics at their iteration (by default an iteration-based run logs them at step 0)
    logger.update(log_metric_by_epoch=False, interval=min(logger.get('interval', 50), budget))
    cfg.default_hooks.logger = logger
    cfg.randomness = dict(seed=seed)


# ---------------------------------------------------------------- measurements
def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes [N, 4] and [M, 4] -> [N, M]."""
    top_left = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # [N, M, 2]
    bottom_right = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(-1)  # [N, M]
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    return inter / np.maximum(area1[:, None] + area2[None, :] - inter, 1e-9)


def count_duplicates(predictions: Sequence[dict], score_thr: float,
                     iou_thr: float = DUP_IOU) -> dict:
    """Duplicate detections: pairs of kept predictions (score >= score_thr)
    in one image with the same label and IoU > iou_thr.

    Args:
        predictions (list[dict]): one per image: ``bboxes`` [N, 4] xyxy,
            ``scores`` [N], ``labels`` [N] (numpy arrays).
        score_thr (float): the lowest score kept.
        iou_thr (float): the IoU above which a pair is a duplicate.

    Returns:
        dict: ``images``, ``kept`` and ``duplicates`` (totals),
        ``duplicates_per_100`` (per 100 images) and ``kept_per_image``.

    Example (two images; 0.9 the IoU of (0, 0, 10, 10) and (0, 0, 10, 9)):
        >>> box, lower = [0, 0, 10, 10], [0, 0, 10, 9]
        >>> one = dict(bboxes=np.array([box, lower, lower, box], float),
        ...            scores=np.array([0.9, 0.8, 0.8, 0.2]), labels=np.array([0, 0, 1, 0]))
        >>> none = dict(bboxes=np.zeros((0, 4)), scores=np.zeros(0), labels=np.zeros(0, int))
        >>> count_duplicates([one, none], score_thr=0.3)  # the 0.2 is dropped; 1 pair of 0s
        {'images': 2, 'kept': 3, 'duplicates': 1, 'duplicates_per_100': 50.0, 'kept_per_image': 1.5}
    """
    kept = duplicates = 0
    for pred in predictions:
        keep = np.asarray(pred['scores']) >= score_thr
        boxes = np.asarray(pred['bboxes'], dtype=float).reshape(-1, 4)[keep]  # [K, 4] xyxy
        labels = np.asarray(pred['labels'])[keep]  # [K]
        kept += int(keep.sum())
        for label in np.unique(labels):
            same = boxes[labels == label]
            duplicates += int(np.triu(box_iou(same, same) > iou_thr, k=1).sum())
    images = len(predictions)
    return dict(images=images, kept=kept, duplicates=duplicates,
                duplicates_per_100=100.0 * duplicates / max(images, 1),
                kept_per_image=kept / max(images, 1))


def predict_val(cfg: Config, checkpoint: str) -> List[dict]:
    """The checkpoint's predictions on ``cfg``'s val set, one dict per image
    (``bboxes`` [N, 4] xyxy in original pixels, ``scores``, ``labels``)."""
    import torch
    from mmdet.apis import init_detector
    from mmengine.runner import Runner
    model = init_detector(copy.deepcopy(cfg), checkpoint, device='cpu')
    loader_cfg = copy.deepcopy(cfg.val_dataloader)
    loader_cfg.update(num_workers=0, persistent_workers=False)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' progress lines
        loader = Runner.build_dataloader(loader_cfg)
    predictions = []
    with torch.no_grad():
        for batch in loader:
            for sample in model.test_step(batch):
                inst = sample.pred_instances
                predictions.append(dict(bboxes=inst.bboxes.numpy(), scores=inst.scores.numpy(),
                                        labels=inst.labels.numpy()))
    return predictions


def read_run(run_dir: str) -> dict:
    """``curve`` [[step, mAP], ...], final ``mAP`` and ``AP50``, and ``steps``
    trained, from the newest ``run_dir/*/vis_data/scalars.json``."""
    logs = sorted(d for d in os.listdir(run_dir)
                  if osp.isfile(osp.join(run_dir, d, 'vis_data', 'scalars.json')))
    if not logs:
        raise FileNotFoundError(f'{run_dir}: no */vis_data/scalars.json')
    path = osp.join(run_dir, logs[-1], 'vis_data', 'scalars.json')
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    evals = [r for r in rows if 'coco/bbox_mAP' in r]
    if not evals:
        raise ValueError(f'{path}: no coco/bbox_mAP recorded')
    return dict(curve=[[int(r['step']), float(r['coco/bbox_mAP'])] for r in evals],
                mAP=float(evals[-1]['coco/bbox_mAP']),
                AP50=float(evals[-1].get('coco/bbox_mAP_50', float('nan'))),
                steps=max(int(r['step']) for r in rows))


def train_and_measure(cfg: Config, run_dir: str, score_thr: float) -> dict:
    """Train ``run_dir/config.py`` with ``tools/train.py`` in a new process,
    read its curve and count the final checkpoint's duplicates. The result
    has ``error`` (and no measurements) when training fails."""
    log = osp.join(run_dir, 'train.log')
    start = time.perf_counter()
    with open(log, 'w') as out:
        code = subprocess.call([sys.executable, TRAIN, osp.join(run_dir, 'config.py'),
                                '--work-dir', run_dir], stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if code != 0:
        return dict(error=f'tools/train.py exited with {code}', log=log)
    result = read_run(run_dir)
    with open(osp.join(run_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    dups = count_duplicates(predict_val(cfg, checkpoint), score_thr)
    return dict(result, train_s=round(seconds, 1), checkpoint=checkpoint,
                val_images=dups['images'], duplicates_per_100=dups['duplicates_per_100'],
                kept_per_image=dups['kept_per_image'])


# ---------------------------------------------------------------- report
def _fmt(value, digits: int = 3) -> str:
    return '—' if value is None or value != value else f'{value:.{digits}f}'


def markdown(results: dict) -> str:
    """The table of ``ablation.json``'s contents, its edits and skips."""
    variants = results.get('variants', {})
    runs = {json.dumps(v['run'], sort_keys=True) for v in variants.values()}
    lines = []
    if len(runs) == 1:
        run = variants[next(iter(variants))]['run']
        lines += [f"Ablation of `{run['config']}`: {run['budget']} training steps per variant, "
                  f"{run['evals']} validations, seed {run['seed']}"
                  + (f", data root `{run['data_root']}`" if run.get('data_root') else '') + '.',
                  f"Duplicates: pairs of val predictions in one image with score >= "
                  f"{run['dup_score_thr']}, the same class and IoU > {DUP_IOU}, per 100 images; "
                  'kept: predictions with score >= the threshold per image.', '']
    elif runs:
        lines += ['The variants were trained with different settings (`run` in ablation.json).',
                  '']
    full = variants.get('full', {}).get('mAP')
    lines += ['| variant | mAP | AP50 | mAP - full | dup / 100 img | kept / img | train s '
              '| steps |', '|---|---:|---:|---:|---:|---:|---:|---:|']
    for name, v in variants.items():
        delta = None if full is None else v['mAP'] - full
        lines.append(f"| {name} | {_fmt(v['mAP'])} | {_fmt(v['AP50'])} | "
                     f"{'' if name == 'full' else _fmt(delta)} | "
                     f"{_fmt(v['duplicates_per_100'], 1)} | {_fmt(v['kept_per_image'], 2)} | "
                     f"{_fmt(v['train_s'], 0)} | {v['steps']} |")
    edits = [f"- `{name}`: " + ', '.join(f'`{k}={v!r}`' for k, v in var['settings'].items())
             for name, var in variants.items() if var['settings']]
    if edits:
        lines += ['', 'Edits:', *edits]
    for title, key in (('Skipped', 'skipped'), ('Failed', 'failed')):
        if results.get(key):
            lines += ['', f'{title}:'] + [f'- `{name}`: {why}'
                                          for name, why in results[key].items()]
    return '\n'.join(lines) + '\n'


def plot(results: dict, path: str) -> None:
    """mAP against training steps, one labelled line per variant."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.get_cmap('tab20').colors
    for i, (name, v) in enumerate(results.get('variants', {}).items()):
        steps, maps = zip(*v['curve'])
        ax.plot(steps, maps, marker='o', color=colours[(2 * i) % 20 + (i // 10) % 2],
                linestyle='-' if i < 10 else '--', label=f"{name} ({_fmt(v['mAP'])})")
    runs = [v['run'] for v in results.get('variants', {}).values()]
    if runs and all(run == runs[0] for run in runs):
        ax.set_title(f"{osp.basename(runs[0]['config'])}: {runs[0]['budget']} steps per variant",
                     fontsize=10)
    ax.set_xlabel('training step')
    ax.set_ylabel('bbox mAP (val)')
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='center left', bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict, work_dir: str) -> str:
    """Variants in :data:`VARIANTS` order; write the table and the plot."""
    order = {name: i for i, name in enumerate(VARIANTS)}
    for key in ('variants', 'skipped', 'failed'):
        results[key] = dict(sorted(results.get(key, {}).items(),
                                   key=lambda item: order.get(item[0], len(order))))
    table = markdown(results)
    with open(osp.join(work_dir, 'ablation.md'), 'w') as f:
        f.write(table)
    plot(results, osp.join(work_dir, 'ablation.png'))
    return table


def merge_results(results: dict, work_dirs: Sequence[str]) -> None:
    """Add the variants of other work dirs' ``ablation.json`` to ``results``
    (variants trained in parallel processes), refusing runs of other settings
    (budget, evals, seed, data...) or a variant found twice."""
    runs = {json.dumps(v['run'], sort_keys=True) for v in results['variants'].values()}
    for work_dir in work_dirs:
        path = osp.join(work_dir, 'ablation.json')
        if not osp.isfile(path):
            raise SystemExit(f'--merge: {path} not found')
        with open(path) as f:
            other = json.load(f)
        for name, entry in other.get('variants', {}).items():
            if name in results['variants']:
                raise SystemExit(f'--merge: {name} is in {path} and in another work dir')
            runs.add(json.dumps(entry['run'], sort_keys=True))
            if len(runs) > 1:
                raise SystemExit(f'--merge: {path} holds runs of other settings than the rest '
                                 '(budget, evals, seed, data, config): not one comparison')
            results['variants'][name] = entry
        for key in ('skipped', 'failed'):
            for name, why in other.get(key, {}).items():
                if name not in results['variants']:
                    results[key][name] = why


# ---------------------------------------------------------------- command line
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', help='the config to ablate')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--budget', type=int, help='training steps per variant')
    parser.add_argument('--evals', type=int, default=4, help='validations per run (default 4)')
    parser.add_argument('--variants', default=','.join(VARIANTS),
                        help=f'comma-separated, of {",".join(VARIANTS)} (default: all)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', help="the config's data_root replaced by this folder")
    parser.add_argument('--dup-score-thr', type=float, default=0.3,
                        help='lowest score of a prediction counted for duplicates (default 0.3)')
    parser.add_argument('--force', action='store_true',
                        help='train variants already in ablation.json again')
    parser.add_argument('--report-only', action='store_true',
                        help='rebuild ablation.md and ablation.png from ablation.json')
    parser.add_argument('--doc', help='markdown file whose <!-- ablation --> block gets the '
                                      'table (regenerated docs)')
    parser.add_argument('--merge', nargs='+', metavar='DIR',
                        help='with --report-only: add the variants of these work dirs\' '
                             'ablation.json (variants trained by parallel processes)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, as key=value pairs')
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f'unknown variants {", ".join(unknown)}; choose from {", ".join(VARIANTS)}')
    if args.merge and not args.report_only:
        parser.error('--merge goes with --report-only')
    if not args.report_only:
        if args.config is None or args.budget is None:
            parser.error('CONFIG and --budget are needed to train (or --report-only)')
        if args.budget < 1 or not 1 <= args.evals <= args.budget:
            parser.error(f'--budget ({args.budget}) must be >= 1 and --evals ({args.evals}) '
                         'between 1 and the budget')
    return args


def load_ablation_config(path: str, cfg_options: Optional[dict] = None,
                         data_root: Optional[str] = None) -> Config:
    """The config with ``--cfg-options`` and ``--data-root`` applied."""
    cfg = load_config(path, cfg_options)
    if data_root:
        from mmdet_detr_plugin.utils.config import apply_data_root
        data_root = data_root if data_root.endswith('/') else data_root + '/'
        apply_data_root(cfg, data_root, cfg.get('data_root'))
        cfg.data_root = data_root
    return cfg


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    json_path = osp.join(args.work_dir, 'ablation.json')
    results = dict(variants={}, skipped={}, failed={})
    if osp.isfile(json_path):
        with open(json_path) as f:
            results.update(json.load(f))
    elif args.report_only and not args.merge:
        raise SystemExit(f'{json_path} not found: nothing to report')
    if args.merge:
        merge_results(results, args.merge)
        os.makedirs(args.work_dir, exist_ok=True)

    if not args.report_only:
        os.makedirs(args.work_dir, exist_ok=True)
        cfg = load_ablation_config(args.config, args.cfg_options, args.data_root)
        run = plain(dict(config=args.config, budget=args.budget, evals=args.evals,
                         seed=args.seed, data_root=args.data_root,
                         cfg_options=args.cfg_options, dup_score_thr=args.dup_score_thr))
        for name in args.variants:
            try:
                vcfg, settings = make_variant(cfg, name)
            except NotApplicable as reason:
                print(f'{name}: skipped, {reason}')
                results['skipped'][name] = str(reason)
                continue
            old = results['variants'].get(name)
            if old and not args.force:
                if old['run'] != run:
                    changed = ', '.join(k for k in run if old['run'].get(k) != run[k])
                    raise SystemExit(f'{json_path}: {name} was trained with other {changed}; '
                                     'pass --force to train it again, or use another --work-dir')
                print(f'{name}: in {json_path} already (--force trains it again)')
                continue
            apply_budget(vcfg, args.budget, args.evals, args.seed)
            run_dir = osp.join(args.work_dir, name)
            shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, not mmengine's resume
            os.makedirs(run_dir)
            vcfg.dump(osp.join(run_dir, 'config.py'))
            print(f'{name}: training {args.budget} steps in {run_dir} '
                  + ' '.join(f'{k}={v!r}' for k, v in settings.items()), flush=True)
            result = train_and_measure(vcfg, run_dir, args.dup_score_thr)
            for key in ('skipped', 'failed'):
                results[key].pop(name, None)
            if 'error' in result:
                print(f"{name}: failed, {result['error']}; see {result['log']}")
                results['failed'][name] = f"{result['error']}; log {result['log']}"
                results['variants'].pop(name, None)
            else:
                results['variants'][name] = dict(settings=settings, run=run, **result)
                print(f"{name}: mAP {result['mAP']:.3f}, {result['train_s']:.0f} s")
            with open(json_path, 'w') as f:  # after each variant: an interrupted run resumes
                json.dump(results, f, indent=1)

    table = write_report(results, args.work_dir)
    if not args.report_only or args.merge:
        with open(json_path, 'w') as f:
            json.dump(results, f, indent=1)
    print(table)
    if args.doc:
        sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
        from seed_summary import insert
        insert(args.doc, 'ablation', table.rstrip('\n'))
    return 1 if results['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())

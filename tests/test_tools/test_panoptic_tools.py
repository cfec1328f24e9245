"""The panoptic tools as a user runs them: tools/test.py (mmdet's PQ and COCO
mAP of a stage-2 checkpoint), tools/demo.py (panoptic pictures) and
tools/analysis_tools/panoptic_summary.py (the PQ table). The tools run
in-process (runpy) on a 3-image toy panoptic set: a subprocess would spend
most of the time budget importing mmdet.

The checkpoint is the stage-2 model of configs/detr-panoptic_r18_toy.py with
random weights, except its classifier, set so that the predictions are known
whatever the random masks: one query per image (the one whose hidden state
leans furthest along a random direction) scores 'circle' at sigmoid(-2),
below the panoptic merge's threshold, so the things-only instances hold it
alone; every other query scores 'speckle' (stuff) above the threshold, and
these merge into one segment covering the whole image. PQ then follows from
the ground truth alone: the segment matches the speckle band where the band
covers more than half of the image.
"""
import glob
import json
import math
import os
import os.path as osp
import pickle
import re
import runpy
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from test_train_test_resume import REPO

CONFIG = osp.join(REPO, 'configs', 'detr-panoptic_r18_toy.py')
SPECKLE = 6  # label of the stuff class whose queries cover the image (category id 7)
CIRCLE = 0
CIRCLE_LOGIT = -2.  # sigmoid 0.119: below the panoptic merge's score_thr (0.4)
PQ_KEYS = ['coco_panoptic/' + k for k in ('PQ', 'SQ', 'RQ', 'PQ_th', 'SQ_th', 'RQ_th',
                                          'PQ_st', 'SQ_st', 'RQ_st')]
MAP_KEYS = ['coco/bbox_mAP', 'coco/segm_mAP']
TEST_OPTIONS = ['test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']


def run_script(mp: pytest.MonkeyPatch, script: str, *args: str) -> None:
    """Run ``tools/...`` as ``__main__`` with ``args``; ``sys`` and the
    environment are restored when ``mp`` is undone."""
    if 'OMP_WAIT_POLICY' not in os.environ and 'GOMP_SPINCOUNT' not in os.environ:
        mp.setenv('OMP_WAIT_POLICY', 'PASSIVE')  # what the tool sets, undone afterwards
    mp.setattr(sys, 'argv', [script, *args])
    mp.setattr(sys, 'path', list(sys.path))
    runpy.run_path(osp.join(REPO, script), run_name='__main__')


def newest_metrics_json(work_dir: str) -> dict:
    files = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    assert files, f'no metrics in {work_dir}'
    with open(files[-1]) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def toy_panoptic(tmp_path_factory):
    """(data root, checkpoint path): 4 train / 3 val images of 64 px with at
    most 2 shapes (speckle covers 23 %, 61 % and 54 % of the val images) and
    the stage-2 model, random but for its classifier (module docstring)."""
    from mmdet.apis import inference_detector
    from mmdet.registry import MODELS
    from mmdet_detr_plugin.datasets import make_toy_panoptic
    root = tmp_path_factory.mktemp('toy_panoptic')
    make_toy_panoptic(str(root / 'data'), num_train=4, num_val=3, img_size=64, seed=0,
                      max_objects=2)
    cfg = Config.fromfile(CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    model.cfg = cfg

    # 1. the classifier's input, [num_images, num_queries, embed_dims], projected on a
    #    random direction: t [num_images, num_queries]
    fc_cls = model.bbox_head.fc_cls  # [num_classes + 1, embed_dims]; sigmoid scores
    seen = []
    hook = fc_cls.register_forward_hook(lambda m, args, out: seen.append(args[0][-1, 0]))
    paths = sorted(glob.glob(str(root / 'data' / 'val' / '*.png')))
    with torch.no_grad():
        for path in paths:
            inference_detector(model, path)
    hook.remove()
    direction = torch.randn(fc_cls.in_features, generator=torch.Generator().manual_seed(1))
    t = torch.stack(seen[-len(paths):]) @ (direction / direction.norm())
    # 2. the query that projects highest in every image becomes the thing
    thing = int(t.min(0).values.argmax())
    low = float(t[:, thing].min())
    high = float(t[:, torch.arange(t.shape[1]) != thing].max())
    assert low - high > 0.1, f'no query stands apart along the direction: {t}'
    # 3. speckle logit -3 u, u = +-1 at the margin's edges: >= 3 for the others,
    #    <= -3 for the thing, whose best class is then circle at the constant -2
    scale, middle = 2 / (low - high), (low + high) / 2
    with torch.no_grad():
        fc_cls.weight.zero_()
        fc_cls.weight[SPECKLE] = -3 * scale * direction / direction.norm()
        fc_cls.bias.fill_(-10.)
        fc_cls.bias[SPECKLE] = 3 * scale * middle
        fc_cls.bias[CIRCLE] = CIRCLE_LOGIT
    ckpt = str(root / 'panoptic.pth')
    meta = dict(dataset_meta={k: cfg.metainfo[k] for k in
                              ('classes', 'thing_classes', 'stuff_classes')})
    torch.save(dict(state_dict=model.state_dict(), meta=meta), ckpt)
    return str(root / 'data') + '/', ckpt


@pytest.fixture(scope='module')
def tested(toy_panoptic, tmp_path_factory):
    """tools/test.py twice: as configured (predictions dumped), and with no
    query kept for the panoptic merge. Returns (metrics, metrics with nothing
    kept, dumped predictions)."""
    data_root, ckpt = toy_panoptic
    work = tmp_path_factory.mktemp('test_runs')
    pkl = str(work / 'results.pkl')
    with pytest.MonkeyPatch.context() as mp:
        run_script(mp, 'tools/test.py', CONFIG, ckpt, '--work-dir', str(work / 'kept'),
                   '--out', pkl, '--cfg-options', f'data_root={data_root}', *TEST_OPTIONS)
    with pytest.MonkeyPatch.context() as mp:
        run_script(mp, 'tools/test.py', CONFIG, ckpt, '--work-dir', str(work / 'none'),
                   '--cfg-options', f'data_root={data_root}', *TEST_OPTIONS,
                   'model.test_cfg.panoptic.score_thr=1.01')
    with open(pkl, 'rb') as f:
        predictions = pickle.load(f)
    return (newest_metrics_json(str(work / 'kept')), newest_metrics_json(str(work / 'none')),
            predictions)


def panoptic_quality(data_root: str, predictions: dict, num_things: int = 4) -> dict:
    """PQ, SQ, RQ (all, things, stuff; in %) of mmdet panoptic maps
    ({file name: [H, W]}) against the toy ground truth, counted by hand as
    panopticapi defines them: a match is a pair of one class with IoU > 0.5;
    per class PQ = sum IoU / (TP + FP / 2 + FN / 2), averaged over the classes
    with any TP, FP or FN. The toy ground truth has no VOID and no crowd, so
    no unmatched prediction is excused."""
    from mmdet.evaluation.functional import INSTANCE_OFFSET
    with open(osp.join(data_root, 'annotations', 'panoptic_val.json')) as f:
        gt_json = json.load(f)
    num_classes = len(gt_json['categories'])
    stats = {c: dict(tp=0, fp=0, fn=0, iou=0.) for c in range(num_classes)}  # by label
    for ann in gt_json['annotations']:
        rgb = np.asarray(Image.open(osp.join(data_root, 'annotations', 'panoptic_val',
                                             ann['file_name'])), dtype=np.int64)
        gt_ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        gt = {s['id']: s['category_id'] - 1 for s in ann['segments_info']}  # toy ids 1..7
        pan = predictions[ann['file_name']]
        pred = {int(i): int(i) % INSTANCE_OFFSET for i in np.unique(pan)
                if int(i) % INSTANCE_OFFSET != num_classes}  # VOID dropped
        matched_gt, matched_pred = set(), set()
        for gid, glabel in gt.items():
            for pid, plabel in pred.items():
                inter = np.sum((gt_ids == gid) & (pan == pid))
                iou = inter / (np.sum(gt_ids == gid) + np.sum(pan == pid) - inter)
                if glabel == plabel and iou > 0.5:
                    stats[glabel]['tp'] += 1
                    stats[glabel]['iou'] += iou
                    matched_gt.add(gid)
                    matched_pred.add(pid)
        for gid in gt.keys() - matched_gt:
            stats[gt[gid]]['fn'] += 1
        for pid in pred.keys() - matched_pred:
            stats[pred[pid]]['fp'] += 1
    result = dict(stats=stats)
    for suffix, labels in (('', range(num_classes)), ('_th', range(num_things)),
                           ('_st', range(num_things, num_classes))):
        counted = [stats[c] for c in labels if stats[c]['tp'] + stats[c]['fp'] + stats[c]['fn']]
        pq = [s['iou'] / (s['tp'] + s['fp'] / 2 + s['fn'] / 2) for s in counted]
        sq = [s['iou'] / s['tp'] if s['tp'] else 0. for s in counted]
        rq = [s['tp'] / (s['tp'] + s['fp'] / 2 + s['fn'] / 2) for s in counted]
        for name, values in (('PQ', pq), ('SQ', sq), ('RQ', rq)):
            result[f'coco_panoptic/{name}{suffix}'] = 100 * sum(values) / len(values)
    return result


def test_test_tool_scores_pq_as_counted_by_hand(toy_panoptic, tested):
    metrics, _, predictions = tested
    for key in PQ_KEYS + MAP_KEYS:
        assert math.isfinite(metrics[key]), key
    assert all(0 <= metrics[key] <= 100 for key in PQ_KEYS)
    assert all(0 <= metrics[key] <= 1 for key in MAP_KEYS)

    # the predictions the classifier was set for: the whole image speckle, one circle
    names = ['000001.png', '000002.png', '000003.png']
    assert [osp.basename(p['img_path']) for p in predictions] == names
    for pred in predictions:
        assert (pred['pred_panoptic_seg']['sem_seg'] == SPECKLE).all()
        instances = pred['pred_instances']  # things only, not thresholded
        assert instances['labels'].tolist() == [CIRCLE]
        assert float(instances['scores'][0]) == pytest.approx(1 / (1 + math.exp(-CIRCLE_LOGIT)))
        assert tuple(instances['masks'].shape) == (1, 64, 64)

    expected = panoptic_quality(toy_panoptic[0], {n: np.full((64, 64), SPECKLE) for n in names})
    speckle = expected['stats'][SPECKLE]  # bands of 61 % and 54 % match, 23 % does not
    assert (speckle['tp'], speckle['fp'], speckle['fn']) == (2, 1, 1)
    assert 1 < speckle['iou'] < 1.2
    # 6 classes in the ground truth (3 things, 3 stuff), only speckle scores
    assert metrics['coco_panoptic/PQ'] == pytest.approx(100 * speckle['iou'] / 3 / 6, abs=1e-4)
    assert metrics['coco_panoptic/PQ_th'] == 0
    for key in PQ_KEYS:
        assert metrics[key] == pytest.approx(expected[key], abs=1e-4), key


def test_test_tool_nothing_kept_is_all_void(tested):
    metrics, none_kept, _ = tested
    for key in PQ_KEYS:
        assert none_kept[key] == 0, key
    # the thing instances do not depend on the panoptic merge's threshold
    for key in MAP_KEYS:
        assert none_kept[key] == metrics[key], key


def test_demo_draws_the_panoptic_segmentation(toy_panoptic, tmp_path, capsys, monkeypatch):
    data_root, ckpt = toy_panoptic
    out_dir = tmp_path / 'pictures'
    run_script(monkeypatch, 'tools/demo.py', osp.join(data_root, 'val'), CONFIG, ckpt,
               '--out-dir', str(out_dir))
    names = ['000001.png', '000002.png', '000003.png']
    lines = capsys.readouterr().out.splitlines()  # after mmengine's checkpoint line
    assert lines[-4:] == [f'{osp.join(data_root, "val", n)}: 1 segments (0 things, 1 stuff)'
                          for n in names] + [f'pictures written to {out_dir}']
    assert sorted(os.listdir(out_dir)) == names
    for name in names:
        assert Image.open(out_dir / name).size == (64, 64)


def test_demo_refuses_attention_on_a_panoptic_model(toy_panoptic, tmp_path, monkeypatch):
    data_root, ckpt = toy_panoptic
    with pytest.raises(ValueError, match='detr-panoptic_r18_toy.py is a panoptic model'):
        run_script(monkeypatch, 'tools/demo.py', osp.join(data_root, 'val', '000001.png'),
                   CONFIG, ckpt, '--out-dir', str(tmp_path), '--attention')


# ---------------------------------------------------------------- panoptic_summary.py
SUMMARY = 'tools/analysis_tools/panoptic_summary.py'
MASKS = {'coco_panoptic/PQ': 41.26, 'coco_panoptic/SQ': 78.04, 'coco_panoptic/RQ': 50.95,
         'coco_panoptic/PQ_th': 55.55, 'coco_panoptic/PQ_st': 22.149,
         'coco/bbox_mAP': 0.4567, 'coco/segm_mAP': 0.3214}
BOXES = {'coco_panoptic/PQ': 9.95, 'coco_panoptic/SQ': 70.0, 'coco_panoptic/RQ': 13.0,
         'coco_panoptic/PQ_th': 3.04, 'coco_panoptic/PQ_st': 19.26,
         'coco/bbox_mAP': 0.4567, 'coco/segm_mAP': 0.0625}
HEADER = ('| run | PQ | SQ | RQ | PQ things | PQ stuff | box mAP | mask mAP |\n'
          '|---|---:|---:|---:|---:|---:|---:|---:|')
ROWS = ('| mask head | 41.3 | 78.0 | 51.0 | 55.5 | 22.1 | 0.457 | 0.321 |\n'
        '| boxes as masks | 9.9 | 70.0 | 13.0 | 3.0 | 19.3 | 0.457 | 0.062 |')


def fake_work_dir(path, runs):
    """``runs``: {timestamp: metrics}, each written where tools/test.py writes it."""
    for stamp, metrics in runs.items():
        os.makedirs(path / stamp)
        (path / stamp / f'{stamp}.json').write_text(json.dumps(metrics))
        (path / stamp / 'vis_data').mkdir()  # the scalars of a test run: not metrics
        (path / stamp / 'vis_data' / 'scalars.json').write_text('{}')
    return str(path)


@pytest.fixture
def work_dirs(tmp_path):
    old = dict(MASKS, **{'coco_panoptic/PQ': 1.0})
    masks = fake_work_dir(tmp_path / 'test_masks', {'20240101_000000': old,
                                                    '20240102_000000': MASKS})
    boxes = fake_work_dir(tmp_path / 'test_boxes', {'20240101_120000': BOXES})
    return masks, boxes


def test_summary_table_and_json(work_dirs, tmp_path, capsys, monkeypatch):
    masks, boxes = work_dirs
    out = tmp_path / 'summary.json'
    run_script(monkeypatch, SUMMARY, '--run', 'mask head', masks, '--run', 'boxes as masks',
               boxes, '--json', str(out), '--extra', 'stage1_seconds=12', 'note=a=b')
    # the newest run of each dir; PQ columns in % with one decimal, mAP with three
    assert capsys.readouterr().out == HEADER + '\n' + ROWS + '\n'
    assert json.loads(out.read_text()) == dict(
        rows=[dict(name='mask head', work_dir=masks, metrics=MASKS),
              dict(name='boxes as masks', work_dir=boxes, metrics=BOXES)],
        stage1_seconds='12', note='a=b')

    with pytest.raises(SystemExit):
        run_script(monkeypatch, SUMMARY, '--run', 'mask head', masks, '--extra', 'minutes')
    assert '--extra takes KEY=VALUE pairs, got minutes' in capsys.readouterr().err


def test_summary_without_coco_metric_columns(tmp_path, capsys, monkeypatch):
    only_pq = {k: v for k, v in BOXES.items() if k.startswith('coco_panoptic')}
    run = fake_work_dir(tmp_path / 'pq', {'20240101_000000': only_pq})
    run_script(monkeypatch, SUMMARY, '--run', 'pq only', run)
    assert capsys.readouterr().out == ('| run | PQ | SQ | RQ | PQ things | PQ stuff |\n'
                                       '|---|---:|---:|---:|---:|---:|\n'
                                       '| pq only | 9.9 | 70.0 | 13.0 | 3.0 | 19.3 |\n')


def test_summary_markdown_replaces_between_markers(work_dirs, tmp_path, monkeypatch):
    masks, boxes = work_dirs
    doc = tmp_path / 'panoptic.md'
    doc.write_text('# Panoptic\nintro\n<!-- panoptic-summary -->\n| old | table |\n'
                   '<!-- panoptic-summary -->\nafter\n')
    run_script(monkeypatch, SUMMARY, '--run', 'mask head', masks, '--run', 'boxes as masks',
               boxes, '--markdown', str(doc))
    assert doc.read_text() == ('# Panoptic\nintro\n<!-- panoptic-summary -->\n' + HEADER
                               + '\n' + ROWS + '\n<!-- panoptic-summary -->\nafter\n')

    one_marker = tmp_path / 'one.md'
    one_marker.write_text('text\n<!-- panoptic-summary -->\nmore\n')
    message = f'{one_marker} needs exactly two <!-- panoptic-summary --> lines'
    with pytest.raises(ValueError, match=re.escape(message)):
        run_script(monkeypatch, SUMMARY, '--run', 'mask head', masks, '--markdown',
                   str(one_marker))
    assert one_marker.read_text() == 'text\n<!-- panoptic-summary -->\nmore\n'


def test_summary_refuses_a_work_dir_without_metrics(work_dirs, tmp_path, monkeypatch):
    empty = tmp_path / 'never_tested'
    (empty / '20240101_000000').mkdir(parents=True)
    (empty / '20240101_000000' / 'other.json').write_text('{}')  # not <timestamp>.json
    with pytest.raises(FileNotFoundError, match=f'metrics .* in {re.escape(str(empty))}$'):
        run_script(monkeypatch, SUMMARY, '--run', 'mask head', work_dirs[0],
                   '--run', 'untested', str(empty))

"""DETR's panoptic targets, the checked data set, and mmdet's PQ on our numpy.

A hand-made 6x8 PNG checks the loader's exact numbers; a 64 px toy panoptic
set (3 val images) runs mmdet's pipeline, CocoPanopticMetric and CocoMetric.
"""
import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmdet.datasets.transforms import LoadPanopticAnnotations
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import DATASETS, METRICS, TRANSFORMS
from mmdet_detr_plugin.datasets import (TOY_STUFF_CLASSES, TOY_THING_CLASSES, make_toy_panoptic,
                                        segment_ids_to_rgb)
from mmdet_detr_plugin.datasets.transforms import masks_to_boxes

META = dict(classes=TOY_THING_CLASSES + TOY_STUFF_CLASSES, thing_classes=TOY_THING_CLASSES,
            stuff_classes=TOY_STUFF_CLASSES)
NUM_CLASSES = len(META['classes'])
PACK_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
             'flip_direction', 'segments_info', 'seg_map_path')

# A 6x8 panoptic image: stuff 70000 in rows 0 and 3, a thing 300 in rows 1-2 x
# columns 1-3, a crowd thing 20 in rows 4-5 x columns 5-6, void elsewhere.
IDS = np.zeros((6, 8), dtype=np.int64)
IDS[[0, 3]] = 70000
IDS[1:3, 1:4] = 300
IDS[4:6, 5:7] = 20
SEGMENTS = [dict(id=70000, category=4, is_thing=False), dict(id=300, category=0, is_thing=True),
            dict(id=20, category=2, is_thing=False)]  # a crowd thing: is_thing False in mmdet


def _case(tmp_path, ids=IDS, segments=SEGMENTS, name='case.png', **extra) -> dict:
    path = str(tmp_path / name)
    Image.fromarray(segment_ids_to_rgb(ids)).save(path)
    return dict(seg_map_path=path, segments_info=[dict(s) for s in segments], height=6,
                width=8, ori_shape=(6, 8), **extra)


def _load(results: dict) -> dict:
    return TRANSFORMS.build(dict(type='PluginLoadPanopticAnnotations'))(results)


def test_every_segment_becomes_an_instance_in_segments_info_order(tmp_path):
    out = _load(_case(tmp_path))
    np.testing.assert_array_equal(out['gt_bboxes'].tensor.numpy(),
                                  [[0, 0, 8, 4], [1, 1, 4, 3], [5, 4, 7, 6]])
    assert out['gt_bboxes'].tensor.dtype == torch.float32
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [4, 0, 2])
    assert out['gt_bboxes_labels'].dtype == np.int64
    assert out['gt_masks'].masks.shape == (3, 6, 8)
    np.testing.assert_array_equal(out['gt_masks'].masks.sum(axis=(1, 2)), [16, 6, 4])
    np.testing.assert_array_equal(out['gt_masks'].masks[1], IDS == 300)
    np.testing.assert_array_equal(out['gt_ignore_flags'], [False, False, False])
    # the semantic map is mmdet's, value for value and dtype
    ref = LoadPanopticAnnotations(with_bbox=False, with_label=False, with_mask=False,
                                  with_seg=True)(_case(tmp_path))
    np.testing.assert_array_equal(out['gt_seg_map'], ref['gt_seg_map'])
    assert out['gt_seg_map'].dtype == ref['gt_seg_map'].dtype
    assert (out['gt_seg_map'] == 255).sum() == 48 - 26


def test_masks_to_boxes_pixel_convention():
    masks = np.zeros((1, 4, 7), dtype=bool)
    masks[0, 1:3, 3:6] = True  # rows 1..2, columns 3..5
    np.testing.assert_array_equal(masks_to_boxes(masks), [[3, 1, 6, 3]])


def test_no_seg_map_path_passes_through():
    results = dict(seg_map_path=None, segments_info=[])
    assert _load(dict(results)) == results


@pytest.mark.parametrize('change, message', [
    (dict(height=6, width=9, ori_shape=(6, 9)), r'is 6x8 \(HxW\) but its image is 6x9'),
    (dict(segments_info=SEGMENTS + [dict(id=999, category=1, is_thing=True)]), r'\[999\]'),
    (dict(segments_info=SEGMENTS[:2]), r'ids \[20\] that segments_info does not list'),
])
def test_png_that_disagrees_names_the_png_and_json(tmp_path, change, message):
    results = {**_case(tmp_path, name='bad.png', ann_file='anns/panoptic_val.json', img_id=7),
               **change}
    with pytest.raises(ValueError, match=message) as err:
        _load(results)
    assert re.search(r'bad\.png.*anns/panoptic_val\.json, image id 7', str(err.value))


def test_missing_panopticapi_names_the_install_step(monkeypatch):
    monkeypatch.setitem(sys.modules, 'panopticapi', None)  # import raises ImportError
    with pytest.raises(ImportError, match='bash scripts/install.sh.*panopticapi-lite'):
        TRANSFORMS.build(dict(type='PluginLoadPanopticAnnotations'))


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_panoptic')
    return make_toy_panoptic(str(root), num_train=4, num_val=3, img_size=64, min_size=8,
                             max_size=24, seed=0)


def _dataset(toy, split='val', pipeline=(), **overrides):
    cfg = dict(type='PluginCocoPanopticDataset', data_root=toy['out_dir'],
               ann_file=f'annotations/panoptic_{split}.json',
               data_prefix=dict(img=f'{split}/', seg=f'annotations/panoptic_{split}/'),
               metainfo=META, test_mode=True, pipeline=list(pipeline))
    cfg.update(overrides)
    return DATASETS.build(cfg)


def test_standard_pipeline_keeps_masks_boxes_labels_aligned(toy):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PluginLoadPanopticAnnotations'),
                dict(type='Resize', scale=(128, 128), keep_ratio=True),
                dict(type='RandomFlip', prob=1.0),
                dict(type='PackDetInputs', meta_keys=PACK_KEYS)]
    dataset = _dataset(toy, pipeline=pipeline)
    assert len(dataset) == 3
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        ids = np.asarray(Image.open(info['seg_map_path'])).astype(np.int64) @ [1, 256, 65536]
        sample = dataset[i]['data_samples']
        gt = sample.gt_instances
        assert sample.img_shape == (128, 128) and sample.flip
        assert len(sample.ignored_instances) == 0
        assert gt.labels.tolist() == [s['category'] for s in info['segments_info']]
        masks = gt.masks.masks  # [M, 128, 128]
        np.testing.assert_array_equal(gt.bboxes.tensor.numpy(), masks_to_boxes(masks))
        for mask, seg in zip(masks, info['segments_info']):
            # nearest x2 upscale of the PNG's segment, then a horizontal flip
            want = np.kron(ids == seg['id'], np.ones((2, 2), dtype=bool))[:, ::-1]
            np.testing.assert_array_equal(mask, want)


def test_dataset_matches_mmdet_and_adds_the_ann_file(toy):
    ours = _dataset(toy)
    theirs = _dataset(toy, type='CocoPanopticDataset')
    for i in range(len(ours)):
        info = ours.get_data_info(i)
        assert info.pop('ann_file') == ours.ann_file
        assert info == theirs.get_data_info(i)


@pytest.mark.parametrize('meta, message', [
    (dict(META, classes=META['classes'][:-1], stuff_classes=TOY_STUFF_CLASSES[:-1]),
     r"category_id 7 \(speckle\), which is not among metainfo.classes"),
    (dict(META, classes=META['classes'][:-1] + ('grass', )), "class 'grass'"),
    (dict(META, thing_classes=TOY_THING_CLASSES + ('stripes', )),
     "'stripes' has isthing=0 but metainfo lists it in thing_classes"),
    (dict(META, classes=TOY_STUFF_CLASSES + TOY_THING_CLASSES), 'in the order'),
])
def test_classes_that_disagree_with_the_json_name_the_file(toy, meta, message):
    with pytest.raises(ValueError, match=message) as err:
        _dataset(toy, split='train', metainfo=meta)
    assert 'panoptic_train.json' in str(err.value)


@pytest.mark.parametrize('overrides, message', [
    (dict(ann_file='annotations/nope.json'), 'ann_file: .*nope.json'),
    (dict(data_prefix=dict(img='val/', seg='annotations/nope/')), 'data_prefix.seg: .*nope'),
])
def test_missing_files_are_named(toy, overrides, message):
    with pytest.raises(FileNotFoundError, match=message):
        _dataset(toy, **overrides)


def _infos(toy) -> list:
    dataset = _dataset(toy)
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def _predictions(toy, drop=None):
    """Perfect panoptic predictions of the val set, mmdet's encoding (label +
    instance * INSTANCE_OFFSET, void = num classes), minus segment ``drop``."""
    samples = []
    for info in _infos(toy):
        ids = np.asarray(Image.open(info['seg_map_path'])).astype(np.int64) @ [1, 256, 65536]
        pan = np.full(ids.shape, NUM_CLASSES, dtype=np.int64)
        for k, seg in enumerate(info['segments_info']):
            if seg['id'] != drop:
                pan[ids == seg['id']] = seg['category'] + (
                    (k + 1) * INSTANCE_OFFSET if seg['is_thing'] else 0)
        samples.append(dict(img_id=info['img_id'], img_path=info['img_path'],
                            ori_shape=ids.shape, segments_info=info['segments_info'],
                            seg_map_path=info['seg_map_path'],
                            pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pan)[None])))
    return samples


def _pq(toy, samples, with_ann_file):
    ann_file = toy['val']['panoptic_ann_file'] if with_ann_file else None
    metric = METRICS.build(dict(type='CocoPanopticMetric', ann_file=ann_file,
                                seg_prefix=toy['val']['panoptic_seg_dir']))
    metric.dataset_meta = META
    metric.process({}, samples)
    return metric.evaluate(len(samples))


@pytest.mark.parametrize('with_ann_file', [True, False])
def test_panoptic_quality_end_to_end(toy, with_ann_file):
    perfect = _pq(toy, _predictions(toy), with_ann_file)
    assert perfect['coco_panoptic/PQ'] == pytest.approx(100.0)
    assert perfect['coco_panoptic/PQ_th'] == pytest.approx(100.0)
    assert perfect['coco_panoptic/PQ_st'] == pytest.approx(100.0)
    # Drop the val set's first thing, a cross: its class gets one false
    # negative. The val set (seed 0, 3 images) has all 7 classes: circle x3,
    # square x2, triangle x2, cross x5, stripes x2, checks x3, speckle x2.
    # Cross's PQ = SQ * RQ = 1 * 4 / (4 + 0.5 * 1) = 8/9, every other class 1.
    segments = [s for d in _infos(toy) for s in d['segments_info']]
    assert np.bincount([s['category'] for s in segments]).tolist() == [3, 2, 2, 5, 2, 3, 2]
    first = next(s for s in segments if s['is_thing'])
    assert first['category'] == TOY_THING_CLASSES.index('cross')
    dropped = _pq(toy, _predictions(toy, drop=first['id']), with_ann_file)
    assert dropped['coco_panoptic/PQ'] == pytest.approx(100 * (6 + 8 / 9) / 7)
    assert dropped['coco_panoptic/PQ_th'] == pytest.approx(100 * (3 + 8 / 9) / 4)
    assert dropped['coco_panoptic/PQ_st'] == pytest.approx(100.0)
    assert dropped['coco_panoptic/SQ'] == pytest.approx(100.0)
    assert dropped['coco_panoptic/RQ'] == pytest.approx(100 * (6 + 8 / 9) / 7)


def test_coco_metric_scores_thing_masks_from_the_instances_file(toy):
    metric = METRICS.build(dict(type='CocoMetric', ann_file=toy['val']['instances_ann_file'],
                                metric=['bbox', 'segm']))
    metric.dataset_meta = META  # as the runner sets it from the panoptic data set
    samples = []
    for info in _infos(toy):
        ids = np.asarray(Image.open(info['seg_map_path'])).astype(np.int64) @ [1, 256, 65536]
        things = [s for s in info['segments_info'] if s['is_thing']]
        masks = np.stack([ids == s['id'] for s in things])
        samples.append(dict(img_id=info['img_id'], ori_shape=ids.shape, pred_instances=dict(
            bboxes=torch.from_numpy(masks_to_boxes(masks)), scores=torch.ones(len(things)),
            labels=torch.tensor([s['category'] for s in things]),
            masks=torch.from_numpy(masks))))
    metric.process({}, samples)
    scores = metric.evaluate(len(samples))
    assert scores['coco/bbox_mAP'] == pytest.approx(1.0)
    assert scores['coco/segm_mAP'] == pytest.approx(1.0)

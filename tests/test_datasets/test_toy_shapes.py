"""Tests of the toy coloured-shapes COCO generator (tiny sizes: seconds)."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys
from itertools import combinations
from typing import Any, Dict

import numpy as np
import pytest
from PIL import Image

from mmdet_detr_plugin.datasets import TOY_CLASSES, make_toy_coco, shape_mask

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SMALL = dict(num_train=6, num_val=4, img_size=64, min_objects=1, max_objects=3,
             min_size=8, max_size=24, seed=0)


def _make(out_dir, **overrides) -> Dict[str, Any]:
    return make_toy_coco(str(out_dir), **{**SMALL, **overrides})


def _load(info: Dict[str, Any], split: str) -> Dict[str, Any]:
    with open(info[split]['ann_file']) as f:
        return json.load(f)


def _read_bytes(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def _box_iou(a, b) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(iw, 0) * max(ih, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_layout_and_return_value(tmp_path):
    info = _make(tmp_path)
    assert info['classes'] == TOY_CLASSES
    for split, num in (('train', 6), ('val', 4)):
        coco = _load(info, split)
        assert info[split]['ann_file'] == osp.join(str(tmp_path), 'annotations', f'{split}.json')
        assert info[split]['num_images'] == num == len(coco['images'])
        assert info[split]['num_instances'] == len(coco['annotations'])
        assert [im['id'] for im in coco['images']] == list(range(1, num + 1))
        assert [a['id'] for a in coco['annotations']] == list(
            range(1, len(coco['annotations']) + 1))
        for im in coco['images']:
            assert im['file_name'] == f"{im['id']:06d}.png"
            assert (im['height'], im['width']) == (64, 64)
            with Image.open(osp.join(tmp_path, split, im['file_name'])) as img:
                assert img.mode == 'RGB' and img.size == (64, 64)


def test_same_seed_is_byte_identical_other_seed_differs(tmp_path):
    a, b, c = (_make(tmp_path / n, seed=s) for n, s in (('a', 3), ('b', 3), ('c', 4)))
    for split in ('train', 'val'):
        assert _read_bytes(a[split]['ann_file']) == _read_bytes(b[split]['ann_file'])
        assert _read_bytes(a[split]['ann_file']) != _read_bytes(c[split]['ann_file'])
        for im in _load(a, split)['images']:
            name = osp.join(split, im['file_name'])
            assert _read_bytes(str(tmp_path / 'a' / name)) == _read_bytes(
                str(tmp_path / 'b' / name))
    assert _read_bytes(str(tmp_path / 'a/val/000001.png')) != _read_bytes(
        str(tmp_path / 'c/val/000001.png'))


def test_images_do_not_depend_on_split_sizes(tmp_path):
    # Per-image seeding: more train images leave the first ones and val unchanged.
    small = _make(tmp_path / 's', num_train=2)
    large = _make(tmp_path / 'l', num_train=5)
    assert _load(small, 'train')['annotations'] == [
        a for a in _load(large, 'train')['annotations'] if a['image_id'] <= 2]
    assert _read_bytes(small['val']['ann_file']) == _read_bytes(large['val']['ann_file'])
    for name in ('train/000002.png', 'val/000004.png'):
        assert _read_bytes(str(tmp_path / 's' / name)) == _read_bytes(str(tmp_path / 'l' / name))


def test_boxes_inside_counts_sizes_and_overlap(tmp_path):
    info = _make(tmp_path, num_train=12, num_val=0, img_size=(48, 80), min_objects=2,
                 max_objects=4, min_size=10, max_size=20, max_iou=0.1)
    coco = _load(info, 'train')
    assert coco['categories'] == [
        dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(TOY_CLASSES)]
    per_image = {im['id']: [] for im in coco['images']}
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        assert all(isinstance(v, float) for v in ann['bbox'])
        assert x >= 0 and y >= 0 and x + w <= 80 and y + h <= 48
        assert 10 <= w <= 20 and 10 <= h <= 20
        assert 0 < ann['area'] <= w * h
        assert ann['iscrowd'] == 0 and ann['category_id'] in (1, 2, 3, 4)
        per_image[ann['image_id']].append(ann['bbox'])
    for boxes in per_image.values():
        assert 2 <= len(boxes) <= 4
        assert all(_box_iou(a, b) <= 0.1 for a, b in combinations(boxes, 2))
    counts = {len(b) for b in per_image.values()}
    assert len(counts) > 1  # the object count really varies


def test_single_object_box_is_tight_around_drawn_pixels(tmp_path):
    info = _make(tmp_path, num_train=10, num_val=0, min_objects=1, max_objects=1)
    coco = _load(info, 'train')
    colours = {}
    for im, ann in zip(coco['images'], coco['annotations']):
        assert ann['image_id'] == im['id']
        pixels = np.asarray(Image.open(osp.join(tmp_path, 'train', im['file_name'])))
        # Background: the most frequent colour (a shape covers < 15 % of the image).
        flat = pixels.reshape(-1, 3)
        uniq, count = np.unique(flat, axis=0, return_counts=True)
        bg = uniq[count.argmax()]
        assert bg[0] == bg[1] == bg[2]  # plain grey
        fg = (pixels != bg).any(-1)
        ys, xs = np.nonzero(fg)
        tight = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        np.testing.assert_allclose(ann['bbox'], tight, atol=1)
        assert ann['area'] == fg.sum()  # area is the pixel count of the shape
        colour = np.unique(pixels[fg], axis=0)
        assert len(colour) == 1 and np.ptp(colour[0].astype(int)) > 100  # one vivid colour
        colours.setdefault(ann['category_id'], set()).add(tuple(colour[0]))
    # Colour does not encode the class: a class seen twice has other colours.
    assert any(len(c) > 1 for c in colours.values())


def test_multi_object_boxes_are_tight_and_objects_do_not_touch(tmp_path):
    ndimage = pytest.importorskip('scipy.ndimage')
    info = _make(tmp_path, num_train=8, num_val=0, min_objects=3, max_objects=4,
                 min_size=8, max_size=16)
    coco = _load(info, 'train')
    for im in coco['images']:
        pixels = np.asarray(Image.open(osp.join(tmp_path, 'train', im['file_name'])))
        uniq, count = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
        fg = (pixels != uniq[count.argmax()]).any(-1)
        # 8-connected blobs: one per object, since shapes keep a 1 px gap.
        labels, num = ndimage.label(fg, structure=np.ones((3, 3)))
        blobs = sorted([s[1].start, s[0].start, s[1].stop - s[1].start,
                        s[0].stop - s[0].start] for s in ndimage.find_objects(labels))
        boxes = sorted(a['bbox'] for a in coco['annotations'] if a['image_id'] == im['id'])
        assert num == len(boxes) >= 3
        np.testing.assert_array_equal(blobs, boxes)


def test_shape_masks_fill_their_square():
    for name in TOY_CLASSES:
        for size in (6, 11, 32):
            mask = shape_mask(name, size)
            assert mask.shape == (size, size) and mask.dtype == bool
            assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
    # Distinct silhouettes: at the default sizes no two masks have IoU >= 0.8.
    for size in (16, 48):
        for a, b in combinations(TOY_CLASSES, 2):
            ma, mb = shape_mask(a, size), shape_mask(b, size)
            assert (ma & mb).sum() / (ma | mb).sum() < 0.8, (a, b, size)


def test_class_subset_sets_ids_in_given_order(tmp_path):
    info = _make(tmp_path, classes=['triangle', 'circle'])
    coco = _load(info, 'val')
    assert info['classes'] == ('triangle', 'circle')
    assert coco['categories'] == [dict(id=1, name='triangle', supercategory='shape'),
                                  dict(id=2, name='circle', supercategory='shape')]
    assert {a['category_id'] for a in coco['annotations']} <= {1, 2}


def test_pycocotools_reads_it(tmp_path):
    coco_api = pytest.importorskip('pycocotools.coco')
    info = _make(tmp_path)
    coco = coco_api.COCO(info['val']['ann_file'])
    raw = _load(info, 'val')
    assert sorted(coco.getImgIds()) == [1, 2, 3, 4]
    assert len(coco.getAnnIds()) == len(raw['annotations'])
    assert coco.getCatIds(catNms=['square']) == [2]
    assert coco.loadImgs(1)[0]['file_name'] == '000001.png'


def test_mmdet_coco_dataset_reads_it(tmp_path):
    datasets = pytest.importorskip('mmdet.datasets')
    info = _make(tmp_path, num_val=5)
    raw = _load(info, 'val')
    ds = datasets.CocoDataset(data_root=str(tmp_path), ann_file='annotations/val.json',
                              data_prefix=dict(img='val/'), metainfo=dict(classes=TOY_CLASSES),
                              pipeline=[], test_mode=True)
    assert len(ds) == 5
    anns_by_img = {im['id']: [] for im in raw['images']}
    for a in raw['annotations']:
        anns_by_img[a['image_id']].append(a)
    num_instances = 0
    for i in range(len(ds)):
        item = ds.get_data_info(i)
        assert osp.isfile(item['img_path'])
        expected = anns_by_img[item['img_id']]
        assert [ins['bbox_label'] for ins in item['instances']] == [
            a['category_id'] - 1 for a in expected]
        for ins, a in zip(item['instances'], expected):
            x, y, w, h = a['bbox']
            assert ins['bbox'] == [x, y, x + w, y + h] and ins['ignore_flag'] == 0
        num_instances += len(item['instances'])
    assert num_instances == len(raw['annotations']) > 0


@pytest.mark.parametrize('kwargs, name', [
    (dict(num_train=-1), 'num_train'),
    (dict(num_val=1.5), 'num_val'),
    (dict(seed=-2), 'seed'),
    (dict(img_size=(64, )), 'img_size'),
    (dict(img_size=4), 'img_size'),
    (dict(classes=['circle', 'hexagon']), 'classes'),
    (dict(classes=[]), 'classes'),
    (dict(classes=['circle', 'circle']), 'classes'),
    (dict(min_objects=3, max_objects=2), 'min_objects'),
    (dict(max_objects=0, min_objects=0), 'max_objects'),
    (dict(max_size=65), 'max_size'),
    (dict(img_size=(64, 32), max_size=40), 'max_size'),
    (dict(min_size=30, max_size=20), 'min_size'),
    (dict(min_size=3), 'min_size'),
    (dict(max_iou=1.0), 'max_iou'),
    (dict(noise_std=-1.0), 'noise_std'),
])
def test_bad_arguments_raise_value_error_naming_them(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        _make(tmp_path, **kwargs)
    assert not (tmp_path / 'annotations').exists()  # validated before writing


def test_impossible_density_raises_runtime_error(tmp_path):
    with pytest.raises(RuntimeError, match='min_objects=2'):
        _make(tmp_path, num_train=1, num_val=0, img_size=16, min_size=12, max_size=16,
              min_objects=2, max_objects=2)


def test_noise_stays_on_background(tmp_path):
    info = _make(tmp_path, num_train=3, num_val=0, min_objects=1, max_objects=1,
                 noise_std=4.0)
    for im, ann in zip(_load(info, 'train')['images'], _load(info, 'train')['annotations']):
        pixels = np.asarray(Image.open(osp.join(tmp_path, 'train', im['file_name'])))
        x, y, w, h = (int(v) for v in ann['bbox'])
        outside = np.ones(pixels.shape[:2], dtype=bool)
        outside[y:y + h, x:x + w] = False
        assert len(np.unique(pixels[outside], axis=0)) > 10  # noisy background
        assert pixels[outside].astype(int).std() < 10  # yet only lightly


def test_cli_writes_dataset_and_prints_summary(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'make_toy_dataset', osp.join(REPO_ROOT, 'tools', 'misc', 'make_toy_dataset.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(['--out-dir', str(tmp_path), '--num-train', '3', '--num-val', '2', '--img-size',
              '64', '48', '--max-size', '20', '--min-size', '8', '--classes', 'cross', 'square'])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith('toy shapes: 3 train / 2 val images')
    coco = json.load(open(tmp_path / 'annotations' / 'train.json'))
    assert [c['name'] for c in coco['categories']] == ['cross', 'square']
    assert (coco['images'][0]['height'], coco['images'][0]['width']) == (64, 48)
    with pytest.raises(SystemExit, match='max_objects'):
        cli.main(['--out-dir', str(tmp_path), '--min-objects', '5', '--max-objects', '2'])


def test_cli_runs_as_a_script_from_anywhere(tmp_path):
    # A fresh interpreter outside the repo: exercises the sys.path fallback
    # when the package is not installed.
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'misc', 'make_toy_dataset.py'),
         '--out-dir', str(tmp_path / 'toy'), '--num-train', '2', '--num-val', '1',
         '--img-size', '32', '--min-size', '8', '--max-size', '16', '--max-objects', '2'],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('toy shapes: 2 train / 1 val images')
    assert (tmp_path / 'toy' / 'val' / '000001.png').is_file()

"""Tests of the toy panoptic generator (64 px, a few images: about a second)."""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from mmdet_detr_plugin.datasets import (TOY_STUFF_CLASSES, TOY_THING_CLASSES, make_toy_panoptic,
                                        segment_ids_to_rgb, shape_mask)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SMALL = dict(num_train=4, num_val=3, img_size=64, min_size=8, max_size=24, seed=0)
NUM_THINGS = len(TOY_THING_CLASSES)


def _ids(path: str) -> np.ndarray:
    """Panoptic PNG -> int64 [H, W] segment ids (R + 256 G + 256^2 B)."""
    rgb = np.asarray(Image.open(path)).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _files(root: str) -> dict:
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            with open(osp.join(folder, name), 'rb') as f:
                out[osp.relpath(osp.join(folder, name), root)] = f.read()
    return out


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_panoptic')
    return make_toy_panoptic(str(root), **SMALL)


def _split(info: dict, split: str):
    with open(info[split]['panoptic_ann_file']) as f:
        panoptic = json.load(f)
    with open(info[split]['instances_ann_file']) as f:
        instances = json.load(f)
    return panoptic, instances


def test_layout_and_categories(toy):
    root = toy['out_dir']
    assert toy['classes'] == TOY_THING_CLASSES + TOY_STUFF_CLASSES
    for split, num in (('train', 4), ('val', 3)):
        assert toy[split]['panoptic_ann_file'] == osp.join(root, 'annotations',
                                                           f'panoptic_{split}.json')
        assert toy[split]['panoptic_seg_dir'] == osp.join(root, 'annotations', f'panoptic_{split}')
        assert toy[split]['instances_ann_file'] == osp.join(root, 'annotations',
                                                            f'instances_{split}.json')
        panoptic, instances = _split(toy, split)
        assert [c['id'] for c in panoptic['categories']] == list(range(1, 8))
        assert [c['name'] for c in panoptic['categories']] == list(toy['classes'])
        assert [c['isthing'] for c in panoptic['categories']] == [1, 1, 1, 1, 0, 0, 0]
        assert instances['categories'] == panoptic['categories'][:NUM_THINGS]
        assert [im['id'] for im in panoptic['images']] == list(range(1, num + 1))
        assert instances['images'] == panoptic['images']
        for im, ann in zip(panoptic['images'], panoptic['annotations']):
            assert im['file_name'] == ann['file_name'] == f"{im['id']:06d}.png"
            assert ann['image_id'] == im['id'] and (im['height'], im['width']) == (64, 64)
            with Image.open(osp.join(root, split, im['file_name'])) as img:
                assert img.mode == 'RGB' and img.size == (64, 64)
            with Image.open(osp.join(toy[split]['panoptic_seg_dir'], ann['file_name'])) as png:
                assert png.mode == 'RGB' and png.size == (64, 64)


def test_png_matches_json_and_every_pixel_is_labelled(toy):
    for split in ('train', 'val'):
        panoptic, _ = _split(toy, split)
        seen = []
        for ann in panoptic['annotations']:
            ids = _ids(osp.join(toy[split]['panoptic_seg_dir'], ann['file_name']))
            assert (ids > 0).all()  # no void
            listed = [s['id'] for s in ann['segments_info']]
            assert sorted(np.unique(ids).tolist()) == sorted(listed)
            seen += listed
            for seg in ann['segments_info']:
                mask = ids == seg['id']
                ys, xs = np.nonzero(mask)
                assert seg['area'] == int(mask.sum())
                assert seg['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                       ys.max() - ys.min() + 1]
                assert seg['iscrowd'] == 0
        assert seen == list(range(1, len(seen) + 1))  # unique over the split
        assert toy[split]['num_segments'] == len(seen)


def test_things_are_whole_shapes_over_two_or_three_stuff_bands(toy):
    panoptic, _ = _split(toy, 'train')
    num_bands = set()
    for ann in panoptic['annotations']:
        ids = _ids(osp.join(toy['train']['panoptic_seg_dir'], ann['file_name']))
        img = np.asarray(Image.open(osp.join(toy['out_dir'], 'train', ann['file_name'])))
        things = [s for s in ann['segments_info'] if s['category_id'] <= NUM_THINGS]
        stuff = [s for s in ann['segments_info'] if s['category_id'] > NUM_THINGS]
        assert 1 <= len(things) <= 4
        # things occlude stuff: each shape is whole, in one saturated colour
        for s in things:
            x, y, w, h = s['bbox']
            assert w == h
            shape = shape_mask(TOY_THING_CLASSES[s['category_id'] - 1], w)
            np.testing.assert_array_equal(ids[y:y + h, x:x + w] == s['id'], shape)
            colours = np.unique(img[ids == s['id']], axis=0)
            assert len(colours) == 1 and int(colours[0].max()) - int(colours[0].min()) > 100
        # stuff: full-width bands stacked top to bottom, distinct classes, >= 20 % high
        assert len({s['category_id'] for s in stuff}) == len(stuff) in (2, 3)
        num_bands.add(len(stuff))
        top = 0
        thing_px = np.isin(ids, [s['id'] for s in things])
        for s in sorted(stuff, key=lambda s: s['bbox'][1]):
            x, y, w, h = s['bbox']
            assert (x, y, w) == (0, top, 64) and h >= 13
            band = ids[y:y + h]
            assert ((band == s['id']) | thing_px[y:y + h]).all()
            top += h
        assert top == 64
    assert num_bands == {2, 3}


def test_instances_json_is_the_things_of_the_png(toy):
    for split in ('train', 'val'):
        panoptic, instances = _split(toy, split)
        anns = instances['annotations']
        assert [a['id'] for a in anns] == list(range(1, len(anns) + 1))
        assert toy[split]['num_things'] == len(anns)
        by_image = {}
        for a in anns:
            by_image.setdefault(a['image_id'], []).append(a)
        for ann in panoptic['annotations']:
            ids = _ids(osp.join(toy[split]['panoptic_seg_dir'], ann['file_name']))
            things = [s for s in ann['segments_info'] if s['category_id'] <= NUM_THINGS]
            assert len(by_image.get(ann['image_id'], [])) == len(things)
            for seg, inst in zip(things, by_image.get(ann['image_id'], [])):
                assert isinstance(inst['segmentation']['counts'], str)
                np.testing.assert_array_equal(mask_utils.decode(inst['segmentation']),
                                              (ids == seg['id']).astype(np.uint8))
                assert inst['category_id'] == seg['category_id'] and inst['iscrowd'] == 0
                assert inst['bbox'] == [float(v) for v in seg['bbox']]
                assert inst['area'] == float(seg['area'])


def test_reruns_are_byte_identical_and_seeds_differ(toy, tmp_path):
    again = make_toy_panoptic(str(tmp_path / 'again'), **SMALL)
    assert _files(again['out_dir']) == _files(toy['out_dir'])
    other = make_toy_panoptic(str(tmp_path / 'other'), **{**SMALL, 'seed': 1})
    assert _files(other['out_dir'])['train/000001.png'] != _files(toy['out_dir'])[
        'train/000001.png']


def test_segment_ids_to_rgb_encoding():
    ids = np.array([[0, 1, 256], [257, 65536, 256**3 - 1]])
    np.testing.assert_array_equal(segment_ids_to_rgb(ids), np.array(
        [[[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[1, 1, 0], [0, 0, 1], [255, 255, 255]]], np.uint8))


@pytest.mark.parametrize('kwargs, name', [(dict(num_val=-1), 'num_val'),
                                          (dict(max_size=80), 'max_size'),
                                          (dict(min_objects=5, max_objects=2), 'min_objects')])
def test_bad_arguments_name_the_argument(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_toy_panoptic(str(tmp_path), **{**SMALL, **kwargs})


def test_cli_panoptic_mode(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'make_toy_dataset', osp.join(REPO_ROOT, 'tools', 'misc', 'make_toy_dataset.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(['--panoptic', '--out-dir', str(tmp_path), '--num-train', '2', '--num-val', '1',
              '--img-size', '48', '--min-size', '8', '--max-size', '16'])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith('toy panoptic: 2 train / 1 val images')
    assert (tmp_path / 'annotations' / 'panoptic_val' / '000001.png').is_file()
    with pytest.raises(SystemExit, match='--classes'):
        cli.main(['--panoptic', '--out-dir', str(tmp_path), '--classes', 'circle'])
    with pytest.raises(SystemExit, match='num_train'):
        cli.main(['--panoptic', '--out-dir', str(tmp_path), '--num-train', '-1'])

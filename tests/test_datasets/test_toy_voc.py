"""The toy shapes in Pascal VOC's layout: files, XML, and mmdet's VOCDataset reading them
back into the boxes and labels that were drawn (tiny sizes: seconds)."""
import importlib.util
import json
import os.path as osp
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdet.datasets import VOCDataset
from mmdet_detr_plugin.datasets import TOY_CLASSES, make_toy_coco, make_toy_voc
from mmdet_detr_plugin.datasets.toy_voc import voc_box, voc_splits

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SMALL = dict(num_train=5, num_val=3, img_size=(48, 64), min_objects=1, max_objects=3,
             min_size=8, max_size=20, seed=0)


@pytest.fixture(scope='module')
def toy_pair(tmp_path_factory):
    """The same small set written as COCO (the drawn truth) and as VOC."""
    root = tmp_path_factory.mktemp('toy_voc')
    coco = make_toy_coco(str(root / 'coco'), **SMALL)
    voc = make_toy_voc(str(root / 'voc'), **SMALL)
    return coco, voc


def _coco_objects(info, split):
    """COCO split -> {image index: [(class name, [x, y, w, h]), ...]}."""
    with open(info[split]['ann_file']) as f:
        coco = json.load(f)
    names = {c['id']: c['name'] for c in coco['categories']}
    objects = {im['id']: [] for im in coco['images']}
    for a in coco['annotations']:
        objects[a['image_id']].append((names[a['category_id']], a['bbox']))
    return objects


def test_worked_examples():
    # a 3 x 2 box at the top-left corner covers pixel columns 1..3, rows 1..2 (1-based)
    assert voc_box([0.0, 0.0, 3.0, 2.0]) == (1, 1, 3, 2)
    assert voc_box([10.0, 5.0, 16.0, 8.0]) == (11, 6, 26, 13)
    assert voc_splits(5, 2) == [('VOC2007', 'trainval', 'train', [1, 2, 3]),
                                ('VOC2012', 'trainval', 'train', [4, 5]),
                                ('VOC2007', 'test', 'val', [1, 2])]
    assert voc_splits(0, 0) == [('VOC2007', 'trainval', 'train', []),
                                ('VOC2012', 'trainval', 'train', []),
                                ('VOC2007', 'test', 'val', [])]


def test_layout_and_return_value(toy_pair):
    coco, voc = toy_pair
    devkit = voc['out_dir']
    assert osp.basename(devkit) == 'VOCdevkit' and voc['classes'] == TOY_CLASSES
    expected = {'VOC2007/trainval': ['000001', '000002', '000003'],
                'VOC2012/trainval': ['2012_000004', '2012_000005'],
                'VOC2007/test': ['test_000001', 'test_000002', 'test_000003']}
    assert list(voc['subsets']) == list(expected)
    for key, ids in expected.items():
        year, image_set = key.split('/')
        subset = voc['subsets'][key]
        assert subset['ids_file'] == osp.join(devkit, year, 'ImageSets', 'Main',
                                              f'{image_set}.txt')
        with open(subset['ids_file']) as f:
            assert f.read() == ''.join(f'{i}\n' for i in ids)
        assert subset['ids'] == ids and subset['num_images'] == len(ids)
        for img_id in ids:
            assert osp.isfile(osp.join(devkit, year, 'Annotations', f'{img_id}.xml'))
            with Image.open(osp.join(devkit, year, 'JPEGImages', f'{img_id}.jpg')) as img:
                assert img.format == 'JPEG' and img.mode == 'RGB' and img.size == (64, 48)
    # VOC2012 has no test set
    assert not osp.exists(osp.join(devkit, 'VOC2012', 'ImageSets', 'Main', 'test.txt'))
    # the train images split over the two years, the val images are the test set
    train_objects = sum(len(v) for v in _coco_objects(coco, 'train').values())
    assert (voc['subsets']['VOC2007/trainval']['num_instances']
            + voc['subsets']['VOC2012/trainval']['num_instances']) == train_objects
    assert voc['subsets']['VOC2007/test']['num_instances'] == coco['val']['num_instances']


def test_xml_holds_the_drawn_boxes_in_voc_indices(toy_pair):
    coco, voc = toy_pair
    truth = {'train': _coco_objects(coco, 'train'), 'val': _coco_objects(coco, 'val')}
    for year, image_set, split, indices in voc_splits(SMALL['num_train'], SMALL['num_val']):
        ids = voc['subsets'][f'{year}/{image_set}']['ids']
        for index, img_id in zip(indices, ids):
            root = ET.parse(osp.join(voc['out_dir'], year, 'Annotations', f'{img_id}.xml'))
            assert root.findtext('folder') == year
            assert root.findtext('filename') == f'{img_id}.jpg'
            assert [root.findtext(f'size/{t}') for t in ('width', 'height', 'depth')] == [
                '64', '48', '3']
            objects = root.findall('object')
            assert len(objects) == len(truth[split][index]) >= 1
            for obj, (name, (x, y, w, h)) in zip(objects, truth[split][index]):
                assert obj.findtext('name') == name
                assert obj.findtext('difficult') == '0' and obj.findtext('truncated') == '0'
                box = [int(obj.findtext(f'bndbox/{t}')) for t in ('xmin', 'ymin', 'xmax', 'ymax')]
                assert box == [x + 1, y + 1, x + w, y + h]  # 1-based, inclusive
                assert 1 <= box[0] <= box[2] <= 64 and 1 <= box[1] <= box[3] <= 48


@pytest.mark.parametrize('year, image_set', [('VOC2007', 'trainval'), ('VOC2012', 'trainval'),
                                             ('VOC2007', 'test')])
def test_mmdet_voc_dataset_reads_the_drawn_boxes(toy_pair, year, image_set):
    coco, voc = toy_pair
    split = 'val' if image_set == 'test' else 'train'
    truth = _coco_objects(coco, split)
    indices = dict(((y, s), i) for y, s, _, i in voc_splits(5, 3))[(year, image_set)]
    ds = VOCDataset(data_root=voc['out_dir'], ann_file=f'{year}/ImageSets/Main/{image_set}.txt',
                    data_prefix=dict(sub_data_root=f'{year}/'),
                    metainfo=dict(classes=TOY_CLASSES), pipeline=[],
                    test_mode=image_set == 'test')
    assert ds.metainfo['dataset_type'] == year
    assert len(ds) == len(indices)
    for i, index in enumerate(indices):
        item = ds.get_data_info(i)
        assert osp.isfile(item['img_path']) and (item['height'], item['width']) == (48, 64)
        expected = truth[index]
        assert [ins['bbox_label'] for ins in item['instances']] == [
            TOY_CLASSES.index(name) for name, _ in expected]
        for ins, (_, (x, y, w, h)) in zip(item['instances'], expected):
            # VOCDataset subtracts 1: the inclusive corners of the drawn pixels
            assert ins['bbox'] == [x, y, x + w - 1, y + h - 1] and ins['ignore_flag'] == 0


def test_pixels_are_the_coco_pictures_up_to_jpeg_noise(toy_pair):
    coco, voc = toy_pair
    pairs = [('train/000004.png', 'VOC2012/JPEGImages/2012_000004.jpg'),
             ('val/000002.png', 'VOC2007/JPEGImages/test_000002.jpg')]
    for png, jpg in pairs:
        a = np.asarray(Image.open(osp.join(coco['out_dir'], png)), dtype=np.float64)
        b = np.asarray(Image.open(osp.join(voc['out_dir'], jpg)), dtype=np.float64)
        assert a.shape == b.shape == (48, 64, 3)
        assert np.abs(a - b).mean() < 2.0


def test_same_seed_gives_identical_files(tmp_path):
    a = make_toy_voc(str(tmp_path / 'a'), **{**SMALL, 'num_train': 3, 'num_val': 1})
    b = make_toy_voc(str(tmp_path / 'b'), **{**SMALL, 'num_train': 3, 'num_val': 1})
    c = make_toy_voc(str(tmp_path / 'c'), **{**SMALL, 'num_train': 3, 'num_val': 1, 'seed': 1})
    for rel in ('VOC2007/Annotations/000002.xml', 'VOC2012/JPEGImages/2012_000003.jpg',
                'VOC2007/Annotations/test_000001.xml'):
        data = [Path(r['out_dir'], rel).read_bytes() for r in (a, b, c)]
        assert data[0] == data[1] != data[2]


@pytest.mark.parametrize('kwargs, name', [
    (dict(num_train=-1), 'num_train'),
    (dict(classes=['circle', 'hexagon']), 'classes'),
    (dict(min_size=30, max_size=20), 'min_size'),
    (dict(background='gradient', noise_std=4.0), 'noise_std'),
])
def test_bad_arguments_raise_value_error_naming_them(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_toy_voc(str(tmp_path), **{**SMALL, **kwargs})
    assert not (tmp_path / 'VOCdevkit').exists()  # validated before writing


def test_cli_format_voc(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'make_toy_dataset', osp.join(REPO_ROOT, 'tools', 'misc', 'make_toy_dataset.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(['--format', 'voc', '--out-dir', str(tmp_path), '--num-train', '3', '--num-val',
              '2', '--img-size', '48', '--min-size', '8', '--max-size', '16', '--classes',
              'square', 'cross'])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(
        'toy shapes, VOC layout: VOC2007/trainval 2 images (')
    assert 'VOC2012/trainval 1 images' in out[0] and 'VOC2007/test 2 images' in out[0]
    root = ET.parse(tmp_path / 'VOCdevkit' / 'VOC2007' / 'Annotations' / 'test_000002.xml')
    assert {o.findtext('name') for o in root.findall('object')} <= {'square', 'cross'}
    with pytest.raises(SystemExit, match='--format does not apply to --panoptic'):
        cli.main(['--panoptic', '--format', 'voc', '--out-dir', str(tmp_path / 'p')])

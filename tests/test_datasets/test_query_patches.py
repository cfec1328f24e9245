"""The unlabeled image folder and UP-DETR's query-patch transforms."""
import os
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from PIL import Image

from mmdet.registry import DATASETS, TRANSFORMS
from mmdet_detr_plugin.datasets import PluginRandomQueryPatches


def write_images(root: str, sizes) -> list:
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(sizes):
        sub = osp.join(root, *(['deep', 'er'] if i % 2 else []))
        os.makedirs(sub, exist_ok=True)
        path = osp.join(sub, f'{i:02d}' + ('.PNG' if i % 3 == 0 else '.png'))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def no_augment(**kwargs) -> PluginRandomQueryPatches:
    return PluginRandomQueryPatches(jitter_prob=0., gray_prob=0., blur_prob=0., **kwargs)


def test_patch_boxes_lie_inside_and_crops_match():
    np.random.seed(0)
    img = np.random.randint(0, 256, (90, 140, 3), dtype=np.uint8)
    t = no_augment(num_patches=200, min_size=8, patch_size=24)
    out = t(dict(img=img.copy(), img_path='x.png'))
    boxes = out['gt_bboxes'].tensor.numpy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert boxes.shape == (200, 4)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 140).all() and (boxes[:, 3] <= 90).all()
    assert (w >= 8).all() and (w <= 132).all() and (h >= 8).all() and (h <= 82).all()
    assert w.max() > 100 and w.min() < 20  # widths spread over [8, W - 8]
    assert (boxes == np.round(boxes)).all()
    assert out['query_patches'].shape == (200, 24, 24, 3)
    assert out['query_patches'].dtype == np.uint8
    for (x1, y1, x2, y2), patch in zip(boxes.astype(int), out['query_patches']):
        expected = mmcv.imresize(img[y1:y2, x1:x2], (24, 24), interpolation='bilinear')
        assert np.array_equal(patch, expected)
    assert out['gt_bboxes_labels'].tolist() == [0] * 200
    assert not out['gt_ignore_flags'].any()


def test_augmentations_change_colours_not_geometry():
    np.random.seed(1)
    torch.manual_seed(1)
    img = np.random.randint(0, 256, (64, 64, 3), dtype=np.uint8)
    t = PluginRandomQueryPatches(num_patches=50, patch_size=16, jitter_prob=1., gray_prob=1.,
                                 blur_prob=0.)
    out = t(dict(img=img, img_path='x.png'))
    # grayscale with probability 1: the three channels are equal
    patches = out['query_patches'].astype(int)
    assert (patches[..., 0] == patches[..., 1]).all() and (patches[..., 1] == patches[..., 2]).all()


def test_small_image_is_skipped_with_a_warning(caplog):
    t = no_augment(min_size=8)
    assert t(dict(img=np.zeros((15, 200, 3), np.uint8), img_path='tiny.png')) is None
    assert t(dict(img=np.zeros((16, 16, 3), np.uint8), img_path='ok.png')) is not None


def test_bad_settings():
    with pytest.raises(ValueError, match='num_patches'):
        PluginRandomQueryPatches(num_patches=0)
    with pytest.raises(ValueError, match='blur_prob'):
        PluginRandomQueryPatches(blur_prob=2)
    with pytest.raises(ValueError, match=r'\[H, W, 3\] uint8'):
        no_augment()(dict(img=np.zeros((40, 40, 3), np.float32), img_path='f.png'))


def test_folder_data_set_with_pipeline(tmp_path):
    paths = write_images(str(tmp_path / 'imgs'), [(40, 50), (60, 30), (33, 33), (48, 64)])
    (tmp_path / 'imgs' / 'notes.txt').write_text('not an image')
    ds = DATASETS.build(dict(
        type='PluginImageFolderDataset', data_root=str(tmp_path), data_prefix=dict(img='imgs'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PluginRandomQueryPatches', num_patches=3, patch_size=16),
                  dict(type='Resize', scale=(80, 80), keep_ratio=True),
                  dict(type='PluginPackQueryPatchInputs')]))
    assert [ds.get_data_info(i)['img_path'] for i in range(len(ds))] == sorted(paths)
    assert len(ds) == 4 and ds.metainfo['classes'] == ('patch', )
    item = ds[0]
    sample = item['data_samples']
    assert sample.query_patches.shape == (3, 3, 16, 16)
    assert sample.query_patches.dtype == torch.uint8
    boxes = sample.gt_instances.bboxes.tensor
    h, w = sample.img_shape
    assert boxes.shape == (3, 4) and (boxes[:, 2] <= w + 1e-4).all() and (boxes[:, 3] <= h).all()


def test_folder_errors_name_the_path(tmp_path):
    (tmp_path / 'empty' / 'sub').mkdir(parents=True)
    (tmp_path / 'empty' / 'sub' / 'a.txt').write_text('x')
    with pytest.raises(FileNotFoundError, match='empty: no image files'):
        DATASETS.build(dict(type='PluginImageFolderDataset', data_root=str(tmp_path / 'empty')))
    with pytest.raises(FileNotFoundError, match='missing: no such folder'):
        DATASETS.build(dict(type='PluginImageFolderDataset',
                            data_root=str(tmp_path / 'missing')))
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'broken.jpg').write_bytes(b'not a jpeg at all')
    ds = DATASETS.build(dict(type='PluginImageFolderDataset', data_root=str(bad),
                             pipeline=[dict(type='LoadImageFromFile')]))
    with pytest.raises(RuntimeError, match='broken.jpg: could not be prepared'):
        ds[0]


def test_pack_needs_the_patches():
    pack = TRANSFORMS.build(dict(type='PluginPackQueryPatchInputs'))
    with pytest.raises(KeyError, match='PluginRandomQueryPatches'):
        pack(dict(img=np.zeros((8, 8, 3), np.uint8)))


def test_too_small_image_is_skipped_in_training_and_refused_in_test(tmp_path):
    root = tmp_path / 'imgs'
    root.mkdir()
    Image.fromarray(np.zeros((10, 40, 3), np.uint8)).save(root / 'a_tiny.png')
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / 'b_fine.png')
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='PluginRandomQueryPatches', num_patches=2, patch_size=8),
                dict(type='PluginPackQueryPatchInputs')]
    ds = DATASETS.build(dict(type='PluginImageFolderDataset', data_root=str(root),
                             pipeline=pipeline))
    assert ds[0]['data_samples'].img_path.endswith('b_fine.png')  # drawn again
    ds = DATASETS.build(dict(type='PluginImageFolderDataset', data_root=str(root),
                             pipeline=pipeline, test_mode=True))
    with pytest.raises(Exception, match='a_tiny.png'):
        ds[0]

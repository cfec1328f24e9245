"""Tests of the toy generator's harder variants: fractional sizes, gradient
backgrounds, the named presets and their CLI (tiny sizes: seconds)."""
import hashlib
import importlib.util
import json
import os
import os.path as osp
from collections import Counter
from typing import Any, Dict, List

import numpy as np
import pytest
from PIL import Image

from mmdet_detr_plugin.datasets import TOY_CLASSES, make_toy_coco, shape_mask
from mmdet_detr_plugin.datasets.toy_shapes import TOY_VARIANTS, _sizes_in_pixels

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = dict(num_train=4, num_val=0, img_size=64)
# Hash of make_toy_coco(num_train=3, num_val=2) with every other argument at its default,
# taken before the variant options existed: the demo's published figures rest on these exact
# images. It covers the JSON bytes and the decoded pixels (not the PNG bytes, which also
# depend on the zlib build).
DEFAULT_SET_MD5 = '65692eacf6d6649f8f247f319ff6df15'


def _load_cli():
    spec = importlib.util.spec_from_file_location(
        'make_toy_dataset', osp.join(REPO_ROOT, 'tools', 'misc', 'make_toy_dataset.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def _images_and_objects(root: str, split: str = 'train') -> List[Any]:
    """[(pixels uint8 [H, W, 3], [annotation, ...]), ...] of one split, in image order."""
    with open(osp.join(root, 'annotations', f'{split}.json')) as f:
        coco = json.load(f)
    anns: Dict[int, List[Dict[str, Any]]] = {im['id']: [] for im in coco['images']}
    for a in coco['annotations']:
        anns[a['image_id']].append(a)
    return [(np.asarray(Image.open(osp.join(root, split, im['file_name']))), anns[im['id']])
            for im in coco['images']]


def _background(pixels: np.ndarray, anns: List[Dict[str, Any]]) -> np.ndarray:
    """bool [H, W]: the pixels outside every object's box."""
    keep = np.ones(pixels.shape[:2], dtype=bool)
    for a in anns:
        x, y, w, h = (int(v) for v in a['bbox'])
        keep[y:y + h, x:x + w] = False
    return keep


def _plane_residuals(pixels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Residuals [N, 3] of a least-squares plane a*x + b*y + c per channel over ``keep``."""
    ys, xs = np.nonzero(keep)
    design = np.stack([xs, ys, np.ones_like(xs)], axis=1).astype(np.float64)  # [N, 3]
    values = pixels[keep].astype(np.float64)  # [N, 3]
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)  # [3, 3]
    return values - design @ coef


def test_presets_state_the_described_numbers():
    assert TOY_VARIANTS['hard'] == dict(
        num_train=2000, num_val=200, img_size=128, min_objects=1, max_objects=6,
        size_range=(0.10, 0.33), background='noisy-gradient', noise_std=8.0, seed=0)
    hard, hard_b = TOY_VARIANTS['hard'], TOY_VARIANTS['hard-b']
    for key in ('min_objects', 'max_objects', 'size_range', 'noise_std', 'seed'):
        assert hard_b[key] != hard[key], key


def test_size_range_to_pixels_worked_example():
    # 0.10 * 128 = 12.8 -> 13 and 0.33 * 128 = 42.24 -> 42: whole pixels inside the range.
    assert _sizes_in_pixels(128, (0.10, 0.33), None, None) == (13, 42)
    assert _sizes_in_pixels(128, (0.08, 0.30), None, None) == (11, 38)
    # The shorter side counts; 0.1 * 130 is 13.000000000000002 in floating point.
    assert _sizes_in_pixels((130, 200), (0.1, 0.5), None, None) == (13, 65)
    assert _sizes_in_pixels(64, None, None, None) == (16, 48)  # the pixel defaults
    assert _sizes_in_pixels(64, None, 8, None) == (8, 48)


@pytest.mark.parametrize('variant', sorted(TOY_VARIANTS))
@pytest.mark.parametrize('img_size', [64, (64, 96)])
def test_counts_and_box_sides_within_the_variant_ranges(tmp_path, variant, img_size):
    preset = {**TOY_VARIANTS[variant], **TINY, 'img_size': img_size}
    make_toy_coco(str(tmp_path), **preset)
    lo, hi = preset['size_range']
    for pixels, anns in _images_and_objects(str(tmp_path)):
        assert preset['min_objects'] <= len(anns) <= preset['max_objects']
        for a in anns:
            x, y, w, h = (int(v) for v in a['bbox'])
            # A shape fills its square, so the tight box side is the drawn side exactly.
            assert w == h and lo * 64 <= w <= hi * 64
            mask = shape_mask(TOY_CLASSES[a['category_id'] - 1], w)
            shape_pixels = pixels[y:y + h, x:x + w][mask]  # [n, 3]
            assert (shape_pixels == shape_pixels[0]).all()  # flat colour on a noisy ground
            assert np.ptp(shape_pixels[0].astype(int)) > 100  # still a vivid colour


def test_object_counts_cover_the_range(tmp_path):
    make_toy_coco(str(tmp_path), **{**TOY_VARIANTS['hard'], **TINY, 'num_train': 40})
    counts = Counter(len(anns) for _, anns in _images_and_objects(str(tmp_path)))
    assert set(counts) <= set(range(1, 7)) and len(counts) >= 4


def test_gradient_backgrounds_are_planes_and_noise_has_its_std(tmp_path):
    common = dict(TINY, min_objects=1, max_objects=1, size_range=(0.1, 0.2), seed=3)
    for background, noise in (('flat', None), ('gradient', None), ('noisy-gradient', None),
                              ('noisy-gradient', 16.0)):
        make_toy_coco(str(tmp_path / f'{background}{noise}'), background=background,
                      noise_std=noise, **common)
    flat = _images_and_objects(str(tmp_path / 'flatNone'))
    gradient = _images_and_objects(str(tmp_path / 'gradientNone'))
    noisy = _images_and_objects(str(tmp_path / 'noisy-gradientNone'))
    noisier = _images_and_objects(str(tmp_path / 'noisy-gradient16.0'))
    for (f_px, f_anns), (g_px, g_anns), (n_px, n_anns), (m_px, m_anns) in zip(
            flat, gradient, noisy, noisier):
        f_bg, g_bg, n_bg = (_background(p, a) for p, a in
                            ((f_px, f_anns), (g_px, g_anns), (n_px, n_anns)))
        assert len(np.unique(f_px[f_bg], axis=0)) == 1  # flat: one grey
        # gradient: a linear ramp, exact up to the rounding to integers
        assert np.abs(_plane_residuals(g_px, g_bg)).max() < 1.0
        # noisy-gradient: non-constant, not flat, and the ramp plus noise of std 8 (default)
        assert len(np.unique(n_px[n_bg], axis=0)) > 100
        assert not np.array_equal(n_px, f_px)
        assert abs(_plane_residuals(n_px, n_bg).std() - 8.0) < 0.5
        assert abs(_plane_residuals(m_px, _background(m_px, m_anns)).std() - 16.0) < 0.8


def test_default_output_is_unchanged(tmp_path):
    make_toy_coco(str(tmp_path / 'default'), num_train=3, num_val=2)
    make_toy_coco(str(tmp_path / 'flat'), num_train=3, num_val=2, background='flat',
                  noise_std=0.0, min_size=16, max_size=48)
    for name in ('default', 'flat'):
        md5 = hashlib.md5()
        for split in ('train', 'val'):
            with open(tmp_path / name / 'annotations' / f'{split}.json', 'rb') as f:
                md5.update(f.read())
            for file_name in sorted(os.listdir(tmp_path / name / split)):
                md5.update(np.asarray(Image.open(tmp_path / name / split / file_name)).tobytes())
        assert md5.hexdigest() == DEFAULT_SET_MD5, name


@pytest.mark.parametrize('kwargs, name', [
    (dict(size_range=(0.3, 0.1)), 'size_range'),
    (dict(size_range=(0.0, 0.3)), 'size_range'),
    (dict(size_range=(0.1, 1.2)), 'size_range'),
    (dict(size_range=0.3), 'size_range'),
    (dict(size_range=(0.1, 0.2, 0.3)), 'size_range'),
    (dict(size_range=('0.1', '0.3')), 'size_range'),
    (dict(size_range=(0.05, 0.3)), 'size_range'),  # 4 px at 64 px: under MIN_SHAPE_SIZE
    (dict(size_range=(0.20, 0.203)), 'size_range'),  # 12.8 to 12.99 px: no whole pixel
    (dict(size_range=(0.1, 0.3), min_size=8), 'size_range'),
    (dict(size_range=(0.1, 0.3), max_size=20), 'size_range'),
    (dict(background='noise'), 'background'),
    (dict(background='gradient', noise_std=4.0), 'noise_std'),
    (dict(background='noisy-gradient', noise_std=0.0), 'noise_std'),
    (dict(background='noisy-gradient', noise_std=100.0), 'noise_std'),
    (dict(background='noisy-gradient', noise_std='8'), 'noise_std'),
    (dict(min_objects=7, max_objects=6), 'min_objects'),
])
def test_bad_options_raise_one_error_naming_them(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=rf'^{name}\b'):
        make_toy_coco(str(tmp_path), **{**TINY, **kwargs})
    assert not (tmp_path / 'annotations').exists()  # validated before writing


def test_cli_hard_variant_is_read_by_mmdet(tmp_path, capsys):
    datasets = pytest.importorskip('mmdet.datasets')
    out = tmp_path / 'tmp'
    _load_cli().main(['--variant', 'hard', '--num-train', '3', '--num-val', '2',
                      '--out-dir', str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('toy shapes (hard): 3 train / 2 val images')
    for split, num in (('train', 3), ('val', 2)):
        ds = datasets.CocoDataset(data_root=str(out), ann_file=f'annotations/{split}.json',
                                  data_prefix=dict(img=f'{split}/'),
                                  metainfo=dict(classes=TOY_CLASSES), pipeline=[],
                                  test_mode=True)
        assert len(ds) == num
        for i in range(num):
            item = ds.get_data_info(i)
            assert osp.isfile(item['img_path']) and (item['height'], item['width']) == (128, 128)
            assert 1 <= len(item['instances']) <= 6
            for ins in item['instances']:
                x1, y1, x2, y2 = ins['bbox']
                assert 13 <= x2 - x1 == y2 - y1 <= 42  # 10 % to 33 % of 128 px


def test_cli_help_states_the_variants(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load_cli().parse_args(['--help'])
    assert exit_info.value.code == 0
    text = ' '.join(capsys.readouterr().out.split())  # undo the line wrapping
    assert ('hard: 2000 train / 200 val images at 128 px, 1-6 objects, sides 10%-33% of the '
            'image, noisy-gradient background (noise std 8), seed 0') in text
    assert 'hard-b: 2000 train / 200 val images' in text


def test_cli_flags_override_the_variant(tmp_path, monkeypatch):
    cli = _load_cli()
    monkeypatch.chdir(tmp_path)
    cli.main(['--variant', 'hard-b', '--num-train', '1', '--num-val', '0'])
    assert (tmp_path / 'data' / 'toy-hard-b' / 'train' / '000001.png').is_file()
    # pixel sizes replace the variant's size range; --background its noise level
    cli.main(['--variant', 'hard-b', '--num-train', '4', '--num-val', '0', '--img-size', '64',
              '--max-objects', '3', '--min-size', '8', '--max-size', '10', '--background',
              'gradient', '--out-dir', 'custom'])
    for pixels, anns in _images_and_objects(str(tmp_path / 'custom')):
        assert 2 <= len(anns) <= 3  # min_objects still from hard-b
        assert all(8 <= a['bbox'][2] <= 10 for a in anns)
        assert np.abs(_plane_residuals(pixels, _background(pixels, anns))).max() < 1.0
    with pytest.raises(SystemExit, match='--variant'):
        cli.main(['--panoptic', '--variant', 'hard'])
    with pytest.raises(SystemExit, match='size_range'):
        cli.main(['--size-range', '0.3', '0.1'])
    with pytest.raises(SystemExit, match='size_range'):
        cli.main(['--variant', 'hard', '--size-range', '0.1', '0.3', '--min-size', '8'])

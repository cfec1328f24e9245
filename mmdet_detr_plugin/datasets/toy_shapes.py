"""Synthetic "coloured shapes" detection data in plain COCO format.

The images are small RGB canvases holding a few flat-coloured geometric
shapes on a grey background (by default; see below for the others). The
class of an object is its silhouette only: colours are drawn independently
of the class, so a detector has to learn shape, not colour. The output is
an ordinary COCO detection layout that MMDetection's stock ``CocoDataset``
reads without any custom dataset class::

    out_dir/train/000001.png ...      out_dir/annotations/train.json
    out_dir/val/000001.png ...        out_dir/annotations/val.json

Everything is drawn with numpy from a ``numpy.random.Generator`` seeded per
image, so the same arguments give byte-identical images and JSON files.

Shape colours are always random: any hue, saturation and value in [0.7, 1],
drawn independently of the class. The background is one of
:data:`BACKGROUNDS`: ``'flat'`` (the default: one mid grey per image, plus
``noise_std`` Gaussian noise if given), ``'gradient'`` (a linear blend between
two random muted colours along a random direction) or ``'noisy-gradient'``
(the gradient plus per-pixel Gaussian noise of std ``noise_std``, by default
:data:`DEFAULT_GRADIENT_NOISE_STD`). Noise is added to the background only;
shapes stay flat. Object sizes are set in pixels (``min_size``, ``max_size``)
or as fractions of the shorter image side (``size_range``).

Harder variants (:data:`TOY_VARIANTS`), meant for trying a recipe on data
generated differently from the data it was tuned on; pass one as
``make_toy_coco(out_dir, **TOY_VARIANTS['hard'])``:

* ``'hard'``: 2000 train / 200 val images of 128 x 128 px, 1 to 6 objects
  per image, box sides 10 % to 33 % of the image side (13 to 42 px),
  noisy-gradient backgrounds with noise std 8, seed 0.
* ``'hard-b'``, a second, held-out variant: 2000 train / 200 val images of
  128 x 128 px, 2 to 7 objects per image, box sides 8 % to 30 % of the image
  side (11 to 38 px), noisy-gradient backgrounds with noise std 16, seed 1.

Both keep the default classes (all four shapes), the random vivid colours
and ``max_iou`` 0.1. Large objects can leave no room for the drawn count; an
image then holds fewer objects, never fewer than ``min_objects``.
"""
import colorsys
import json
import math
import os
import os.path as osp
from numbers import Integral, Real
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

TOY_CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'cross')

# Below ~6 px the four silhouettes become indistinguishable blobs.
MIN_SHAPE_SIZE = 6
# Bounded retries keep generation finite when the requested density is
# unreachable; failures are reported instead of looping forever.
_PLACEMENT_TRIES = 100
_IMAGE_TRIES = 20
# Split ids feed the per-image seed so that train and val are independent
# streams and changing ``num_train`` never changes the val images.
_SPLIT_IDS = {'train': 0, 'val': 1}

BACKGROUNDS: Tuple[str, ...] = ('flat', 'gradient', 'noisy-gradient')
# Noise std (0-255 scale) of a 'noisy-gradient' background when none is given.
DEFAULT_GRADIENT_NOISE_STD = 8.0
# Named harder variants: keyword arguments of make_toy_coco (documented above).
TOY_VARIANTS: Dict[str, Dict[str, Any]] = {
    'hard': dict(num_train=2000, num_val=200, img_size=128, min_objects=1, max_objects=6,
                 size_range=(0.10, 0.33), background='noisy-gradient',
                 noise_std=DEFAULT_GRADIENT_NOISE_STD, seed=0),
    'hard-b': dict(num_train=2000, num_val=200, img_size=128, min_objects=2, max_objects=7,
                   size_range=(0.08, 0.30), background='noisy-gradient', noise_std=16.0,
                   seed=1),
}


def shape_mask(shape: str, size: int) -> np.ndarray:
    """Rasterise one shape that fills a ``size`` x ``size`` box.

    Pixels are tested at their centres, so the result is exact and the same
    on every platform (no anti-aliasing, no floating-point drawing library).

    Args:
        shape (str): One of :data:`TOY_CLASSES`.
        size (int): Side of the bounding square in pixels.

    Returns:
        np.ndarray: bool mask of shape [size, size]; every shape touches all
        four sides of the square, so its tight box is the whole square.
    """
    c = (np.arange(size) + 0.5) - size / 2  # pixel-centre offsets from the middle
    dy, dx = c[:, None], c[None, :]
    if shape == 'circle':
        # Radius a quarter pixel under size / 2: rounder at small sizes, yet
        # the edge rows and columns stay non-empty (tight box = the square).
        return dx**2 + dy**2 <= (size / 2 - 0.25)**2  # broadcasts to [size, size]
    if shape == 'square':
        return np.ones((size, size), dtype=bool)
    if shape == 'triangle':
        # Upright isosceles triangle; half-width grows linearly down the rows.
        # Using the row's lower edge keeps the apex row non-empty.
        rows = np.arange(size)[:, None] + 1.0
        return np.abs(dx) <= rows / 2
    if shape == 'cross':
        thick = max(1, round(size / 3))
        lo = (size - thick) // 2
        band = np.zeros(size, dtype=bool)
        band[lo:lo + thick] = True
        return band[:, None] | band[None, :]
    raise ValueError(f'unknown shape {shape!r}; expected one of {TOY_CLASSES}')


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation: bool [s, s] -> bool [s + 2, s + 2] (1 px halo)."""
    s = mask.shape[0]
    out = np.zeros((s + 2, s + 2), dtype=bool)
    for dy in range(3):
        for dx in range(3):
            out[dy:dy + s, dx:dx + s] |= mask
    return out


def _box_iou(a: Sequence[int], b: Sequence[int]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(iw, 0) * max(ih, 0)
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def _saturated_rgb(rng: np.random.Generator) -> np.ndarray:
    """A vivid colour: any hue, high saturation and value, so it never looks
    like the grey background (channel spread >= 0.7 * 0.7 * 255 ~ 125)."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.7, 1), rng.uniform(0.7, 1)
    return np.round(np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255).astype(np.uint8)


def _gradient_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A linear blend of two random muted colours along a random direction.

    The end colours have saturation <= 0.4 and value in [0.2, 0.85], so every
    pixel's channel spread is <= 0.4 * 0.85 * 255 ~ 87 (a blend never spreads
    more than its ends), under the >= 125 of any shape colour: a shape may
    share the background's hue but never its colour (before any noise).

    Returns:
        np.ndarray: float64 [h, w, 3], RGB on the 0-255 scale.
    """
    ends = [np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.4),
                                         rng.uniform(0.2, 0.85))) * 255 for _ in range(2)]
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w] + 0.5  # pixel centres, each [h, w]
    proj = xs * np.cos(angle) + ys * np.sin(angle)  # position along the direction, [h, w]
    t = (proj - proj.min()) / np.ptp(proj)  # 0 at one corner, 1 at the opposite; [h, w]
    return ends[0] + t[..., None] * (ends[1] - ends[0])  # [h, w, 3]


def render_toy_image(rng: np.random.Generator,
                     img_size: Tuple[int, int],
                     classes: Sequence[str] = TOY_CLASSES,
                     min_objects: int = 1,
                     max_objects: int = 4,
                     min_size: int = 16,
                     max_size: int = 48,
                     max_iou: float = 0.1,
                     noise_std: float = 0.0,
                     background: str = 'flat') -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """Draw one image; arguments are assumed valid (see :func:`make_toy_coco`).

    Objects never share or touch a pixel (a 1 px gap keeps two shapes of
    similar colour from merging, and each box is tight around its visible
    pixels) and their boxes overlap by at most ``max_iou``. A placement that
    fails ``_PLACEMENT_TRIES`` times ends the image early if ``min_objects``
    are already placed, otherwise the whole image is redrawn.

    Args:
        rng (np.random.Generator): Source of all randomness.
        img_size (tuple[int, int]): (height, width).
        classes (Sequence[str]): Shape names; labels index into it.
        min_objects, max_objects (int): Object-count range, inclusive.
        min_size, max_size (int): Side range of a shape's box, inclusive.
        max_iou (float): Largest allowed box IoU between two objects.
        noise_std (float): Std of Gaussian noise on the background only.
        background (str): One of :data:`BACKGROUNDS`; the noise is
            ``noise_std`` whatever the kind (the caller resolves it).

    Returns:
        tuple: image (np.ndarray, uint8 [H, W, 3], RGB) and a list of objects,
        each ``{'label': int, 'bbox': [x, y, w, h] (float), 'area': float}``
        where ``area`` is the pixel count of the shape.
    """
    h, w = img_size
    for _ in range(_IMAGE_TRIES):
        if background == 'flat':
            grey = rng.integers(40, 216)  # mid greys: far from any vivid colour
            img = np.full((h, w, 3), grey, dtype=np.float64)
        else:
            img = _gradient_background(rng, h, w)
        if noise_std > 0:
            img += rng.normal(0.0, noise_std, size=img.shape)
        img = np.clip(np.round(img), 0, 255).astype(np.uint8)
        # Pixels taken by a shape or its 1 px halo; padded by 1 on every side
        # so halos at the image border need no clipping.
        occupied = np.zeros((h + 2, w + 2), dtype=bool)
        objects: List[Dict[str, Any]] = []
        boxes: List[Tuple[int, int, int, int]] = []  # integer (x, y, w, h)
        num = int(rng.integers(min_objects, max_objects + 1))
        for _ in range(num):
            label = int(rng.integers(len(classes)))
            colour = _saturated_rgb(rng)
            for _ in range(_PLACEMENT_TRIES):
                size = int(rng.integers(min_size, max_size + 1))
                x, y = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
                mask = shape_mask(classes[label], size)
                ys, xs = np.nonzero(mask)
                box = (x + int(xs.min()), y + int(ys.min()),
                       int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1)
                if occupied[y + 1:y + 1 + size, x + 1:x + 1 + size][mask].any():
                    continue
                if any(_box_iou(box, b) > max_iou for b in boxes):
                    continue
                occupied[y:y + size + 2, x:x + size + 2] |= _dilate(mask)
                img[y:y + size, x:x + size][mask] = colour
                boxes.append(box)
                objects.append(dict(label=label, bbox=[float(v) for v in box],
                                    area=float(mask.sum())))
                break
            else:
                break  # this object found no room: stop adding to the image
        if len(objects) >= min_objects:
            return img, objects
    raise RuntimeError(
        f'could not place min_objects={min_objects} shapes of size '
        f'[{min_size}, {max_size}] in a {h}x{w} image with max_iou={max_iou}; '
        'lower min_objects or max_size, or use a larger img_size')


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {value!r}')
    return int(value)


def _check_img_size(img_size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """Validate ``img_size`` (a side, or (height, width)); return (h, w)."""
    if isinstance(img_size, Integral):
        sizes = [img_size] * 2
    else:
        sizes = list(img_size) if isinstance(img_size, (list, tuple)) else []
    if len(sizes) != 2:
        raise ValueError(f'img_size must be an int or (height, width), got {img_size!r}')
    h, w = (_check_int('img_size', s, MIN_SHAPE_SIZE) for s in sizes)
    return h, w


def _sizes_in_pixels(img_size: Union[int, Sequence[int]],
                     size_range: Optional[Sequence[float]],
                     min_size: Optional[int],
                     max_size: Optional[int]) -> Tuple[int, int]:
    """Resolve the shape-size options of :func:`make_toy_coco` to pixels.

    ``size_range`` (low, high) in fractions of the shorter image side becomes
    the whole-pixel sides inside it, ``[ceil(low * side), floor(high * side)]``:
    at 128 px, (0.10, 0.33) gives 13 to 42 px. Without it, a missing
    ``min_size`` or ``max_size`` takes its default, 16 or 48. The pixel
    values are range-checked later by :func:`_check_args`.
    """
    if size_range is None:
        return 16 if min_size is None else min_size, 48 if max_size is None else max_size
    if min_size is not None or max_size is not None:
        raise ValueError('size_range replaces min_size and max_size; give either size_range '
                         f'or min_size/max_size, got size_range={size_range!r}, '
                         f'min_size={min_size!r}, max_size={max_size!r}')
    pair = list(size_range) if isinstance(size_range, (list, tuple)) else []
    if (len(pair) != 2 or not all(isinstance(v, Real) and not isinstance(v, bool) for v in pair)
            or not 0.0 < pair[0] <= pair[1] <= 1.0):
        raise ValueError('size_range must be (low, high) fractions of the image side with '
                         f'0 < low <= high <= 1, got {size_range!r}')
    side = min(_check_img_size(img_size))
    # The 1e-9 keeps a product such as 0.1 * 130 = 13.000000000000002 at 13.
    lo, hi = math.ceil(pair[0] * side - 1e-9), math.floor(pair[1] * side + 1e-9)
    if lo < MIN_SHAPE_SIZE:
        raise ValueError(f'size_range low {pair[0]} gives {lo} px shapes at image side {side}; '
                         f'the smallest is {MIN_SHAPE_SIZE} px: raise it or img_size')
    if lo > hi:
        raise ValueError(f'size_range {tuple(pair)} holds no whole-pixel side at image side '
                         f'{side}; widen it')
    return lo, hi


def _resolve_noise(background: str, noise_std: Optional[float]) -> float:
    """Check ``background`` against ``noise_std``; return the noise std to draw."""
    if background not in BACKGROUNDS:
        raise ValueError(f'background must be one of {BACKGROUNDS}, got {background!r}')
    if noise_std is None:
        return DEFAULT_GRADIENT_NOISE_STD if background == 'noisy-gradient' else 0.0
    if not isinstance(noise_std, Real) or not 0.0 <= noise_std <= 64.0:
        raise ValueError(f'noise_std must be in [0, 64], got {noise_std!r}')
    if background == 'gradient' and noise_std > 0:
        raise ValueError(f"noise_std={noise_std} does not apply to background='gradient' "
                         "(noise-free); use background='noisy-gradient' for a noisy gradient")
    if background == 'noisy-gradient' and noise_std == 0:
        raise ValueError("noise_std must be > 0 with background='noisy-gradient'; "
                         "use background='gradient' for no noise")
    return float(noise_std)


def _check_args(img_size: Union[int, Sequence[int]], classes: Sequence[str], num_train: int,
                num_val: int, min_objects: int, max_objects: int, min_size: int,
                max_size: int, max_iou: float, noise_std: float, seed: int
                ) -> Tuple[Tuple[int, int], Tuple[str, ...]]:
    """Validate :func:`make_toy_coco` arguments; return (h, w) and classes."""
    _check_int('num_train', num_train, 0)
    _check_int('num_val', num_val, 0)
    _check_int('seed', seed, 0)  # SeedSequence rejects negative entropy
    hw = _check_img_size(img_size)
    if isinstance(classes, str) or len(classes) == 0:
        raise ValueError(f'classes must be a non-empty sequence of names, got {classes!r}')
    unknown = [c for c in classes if c not in TOY_CLASSES]
    if unknown:
        raise ValueError(f'classes has unknown names {unknown}; choose from {TOY_CLASSES}')
    if len(set(classes)) != len(classes):
        raise ValueError(f'classes has duplicates: {list(classes)}')
    _check_int('min_objects', min_objects, 0)
    _check_int('max_objects', max_objects, 1)
    if min_objects > max_objects:
        raise ValueError(f'min_objects ({min_objects}) > max_objects ({max_objects})')
    _check_int('min_size', min_size, MIN_SHAPE_SIZE)
    _check_int('max_size', max_size, MIN_SHAPE_SIZE)
    if min_size > max_size:
        raise ValueError(f'min_size ({min_size}) > max_size ({max_size})')
    if max_size > min(hw):
        raise ValueError(f'max_size ({max_size}) is larger than the image side {min(hw)}')
    if not isinstance(max_iou, Real) or not 0.0 <= max_iou < 1.0:
        raise ValueError(f'max_iou must be in [0, 1), got {max_iou!r}')
    if not isinstance(noise_std, Real) or not 0.0 <= noise_std <= 64.0:
        raise ValueError(f'noise_std must be in [0, 64], got {noise_std!r}')
    return (hw[0], hw[1]), tuple(classes)


def make_toy_coco(out_dir: Union[str, os.PathLike],
                  num_train: int = 1000,
                  num_val: int = 200,
                  img_size: Union[int, Sequence[int]] = 128,
                  classes: Sequence[str] = TOY_CLASSES,
                  min_objects: int = 1,
                  max_objects: int = 4,
                  seed: int = 0,
                  min_size: Optional[int] = None,
                  max_size: Optional[int] = None,
                  max_iou: float = 0.1,
                  noise_std: Optional[float] = None,
                  size_range: Optional[Sequence[float]] = None,
                  background: str = 'flat') -> Dict[str, Any]:
    """Write a toy-shapes detection data set in COCO format.

    Image ``i`` of a split is drawn from ``default_rng([seed, split, i])``, so
    a split's first images do not depend on how many images are requested.
    Existing files with the same names are overwritten.

    Args:
        out_dir (str | os.PathLike): Root folder; ``train/``, ``val/`` and
            ``annotations/`` are created inside.
        num_train, num_val (int): Images per split (0 writes an empty split).
        img_size (int | Sequence[int]): Side, or (height, width), in pixels.
        classes (Sequence[str]): Subset of :data:`TOY_CLASSES`; category ids
            are 1..K in this order.
        min_objects, max_objects (int): Objects per image, inclusive range.
        seed (int): Non-negative base seed.
        min_size, max_size (int, optional): Side of a shape's box in pixels,
            inclusive. Defaults to 16 and 48 when ``size_range`` is not given.
        max_iou (float): Largest box IoU allowed between two objects.
        noise_std (float, optional): Gaussian noise std (0-255 scale) on the
            background, in [0, 64]. Defaults to 0, or to
            :data:`DEFAULT_GRADIENT_NOISE_STD` (8) for ``'noisy-gradient'``;
            must be 0 for ``'gradient'`` and > 0 for ``'noisy-gradient'``.
        size_range (Sequence[float], optional): (low, high) side of a shape's
            box as fractions of the shorter image side, an alternative to
            ``min_size`` / ``max_size``; the sides drawn are the whole pixels
            in ``[low * side, high * side]``. Defaults to None.
        background (str): One of :data:`BACKGROUNDS` (see the module
            docstring). Defaults to ``'flat'``.

    Returns:
        dict: ``out_dir``, ``classes`` and, per split (``'train'``,
        ``'val'``), ``{'ann_file', 'img_dir', 'num_images', 'num_instances'}``.

    Raises:
        ValueError: If an argument is invalid; the message names it.
        RuntimeError: If ``min_objects`` shapes cannot be fitted in an image.
    """
    min_size, max_size = _sizes_in_pixels(img_size, size_range, min_size, max_size)
    noise_std = _resolve_noise(background, noise_std)
    hw, names = _check_args(img_size, classes, num_train, num_val, min_objects, max_objects,
                            min_size, max_size, max_iou, noise_std, seed)
    out_dir = str(out_dir)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    result: Dict[str, Any] = dict(out_dir=out_dir, classes=names)
    categories = [dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(names)]
    for split, num in (('train', num_train), ('val', num_val)):
        img_dir = osp.join(out_dir, split)
        os.makedirs(img_dir, exist_ok=True)
        images: List[Dict[str, Any]] = []
        annotations: List[Dict[str, Any]] = []
        for img_id in range(1, num + 1):
            rng = np.random.default_rng([seed, _SPLIT_IDS[split], img_id])
            img, objects = render_toy_image(rng, hw, names, min_objects, max_objects,
                                            min_size, max_size, max_iou, noise_std,
                                            background)
            file_name = f'{img_id:06d}.png'
            Image.fromarray(img).save(osp.join(img_dir, file_name), format='PNG')
            images.append(dict(id=img_id, file_name=file_name, height=hw[0], width=hw[1]))
            for obj in objects:
                annotations.append(dict(id=len(annotations) + 1, image_id=img_id,
                                        category_id=obj['label'] + 1, bbox=obj['bbox'],
                                        area=obj['area'], iscrowd=0))
        # No date in ``info``: it would break byte-identical reruns.
        coco = dict(info=dict(description=f'toy shapes ({split})', version='1.0'),
                    licenses=[], images=images, annotations=annotations,
                    categories=categories)
        ann_file = osp.join(out_dir, 'annotations', f'{split}.json')
        with open(ann_file, 'w') as f:
            json.dump(coco, f)
        result[split] = dict(ann_file=ann_file, img_dir=img_dir, num_images=num,
                             num_instances=len(annotations))
    return result

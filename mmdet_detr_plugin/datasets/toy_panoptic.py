"""Synthetic panoptic data: the toy shapes over textured background bands.

Things are the four toy shapes of :mod:`.toy_shapes`, drawn and placed by the
same :func:`render_toy_image` (flat saturated colours, 1-4 per image, no two
touching). Stuff is the background, cut into 2 or 3 horizontal bands, each
covered by a different texture in muted colours. Every pixel belongs to a
segment: things occlude stuff, and nothing is void. The output is the COCO
panoptic layout read by MMDetection's ``CocoPanopticDataset`` and
``CocoPanopticMetric``, plus a COCO instances file of the things (RLE masks)
for ``CocoMetric(metric=['bbox', 'segm'])``::

    out_dir/train/000001.png ...                      RGB images
    out_dir/val/000001.png ...
    out_dir/annotations/panoptic_train.json           COCO panoptic
    out_dir/annotations/panoptic_train/000001.png ... segment ids as RGB
    out_dir/annotations/instances_train.json          COCO instances (things)
    (and the same three for ``val``)

Category ids: things 1-4 (:data:`TOY_THING_CLASSES`), stuff 5-7
(:data:`TOY_STUFF_CLASSES`). Images are seeded per image as in
:func:`make_toy_coco`, so reruns are byte-identical.
"""
import colorsys
import json
import os
import os.path as osp
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .toy_shapes import _SPLIT_IDS, TOY_CLASSES, _check_args, render_toy_image, shape_mask

TOY_THING_CLASSES: Tuple[str, ...] = TOY_CLASSES
TOY_STUFF_CLASSES: Tuple[str, ...] = ('stripes', 'checks', 'speckle')
# A band is never thinner than this fraction of the image height.
MIN_BAND_FRACTION = 0.2


def segment_ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Encode segment ids as COCO panoptic colours (``id = R + 256 G + 256^2 B``).

    Args:
        ids (np.ndarray): int [H, W], values in [0, 256^3); 0 means void.

    Returns:
        np.ndarray: uint8 [H, W, 3], RGB; the inverse of panopticapi's ``rgb2id``.
    """
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def _muted_rgb(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """A dull colour: saturation <= 0.3 and value in [low, high]. Shapes have
    saturation and value >= 0.7, so a texture never looks like a shape."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(low, high)
    return np.round(np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255).astype(np.uint8)


def _texture(rng: np.random.Generator, stuff: str, height: int, width: int) -> np.ndarray:
    """Paint one band: uint8 [height, width, 3] RGB, in two muted colours, one
    darker (value 0.4-0.5) and one lighter (0.55-0.65): the pattern always shows,
    at a contrast well below the shapes'. With high-contrast textures (values
    0.2-0.4 against 0.55-0.8) the demo's box detector found almost no shape in
    its budget (box mAP 0.08 against 0.29 at 2400 steps, docs/panoptic.md).

    stripes: diagonal bands 2-5 px wide; checks: a checkerboard of 3-8 px
    cells; speckle: each pixel independently takes the second colour with
    probability 0.3.
    """
    colours = np.stack([_muted_rgb(rng, 0.4, 0.5), _muted_rgb(rng, 0.55, 0.65)])  # [2, 3]
    if rng.random() < 0.5:
        colours = colours[::-1]
    ys, xs = np.mgrid[0:height, 0:width]
    if stuff == 'stripes':
        half = int(rng.integers(2, 6))
        slope = int(rng.choice([-1, 1]))
        pick = ((xs + slope * ys) // half) % 2
    elif stuff == 'checks':
        cell = int(rng.integers(3, 9))
        pick = (xs // cell + ys // cell) % 2
    elif stuff == 'speckle':
        pick = (rng.random((height, width)) < 0.3).astype(np.int64)
    else:
        raise ValueError(f'unknown stuff class {stuff!r}; expected one of {TOY_STUFF_CLASSES}')
    return colours[pick]  # [height, width, 3]


def _band_heights(rng: np.random.Generator, height: int) -> List[int]:
    """2 or 3 band heights summing to ``height``, each >= 20 % of it (rounded up)."""
    num = int(rng.integers(2, 4))
    least = max(1, int(np.ceil(MIN_BAND_FRACTION * height)))
    spare = height - num * least  # >= 0 for every height >= 6 (MIN_SHAPE_SIZE)
    cuts = np.sort(rng.integers(0, spare + 1, size=num - 1))
    extra = np.diff(np.concatenate([[0], cuts, [spare]]))
    return [least + int(e) for e in extra]


def render_toy_panoptic(rng: np.random.Generator,
                        img_size: Tuple[int, int],
                        min_objects: int = 1,
                        max_objects: int = 4,
                        min_size: int = 16,
                        max_size: int = 48,
                        max_iou: float = 0.1) -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """Draw one panoptic image; arguments are assumed valid.

    1. Place and paint the shapes with :func:`render_toy_image` (its grey
       background is discarded).
    2. Cut the background into 2-3 bands with distinct stuff classes, paint
       each with its texture.
    3. Paste the shapes over the bands; a band left with no pixel (only when a
       shape spans the full width) is dropped.

    Args:
        rng (np.random.Generator): Source of all randomness.
        img_size (tuple[int, int]): (height, width).
        min_objects, max_objects, min_size, max_size, max_iou: As in
            :func:`render_toy_image`.

    Returns:
        tuple: image (uint8 [H, W, 3], RGB), segment map (int64 [H, W], values
        1..S, no void) and the category id (1-based, things first, then
        stuff) of segments 1..S, things first.
    """
    h, w = img_size
    # 1. things
    shapes_img, objects = render_toy_image(rng, img_size, TOY_THING_CLASSES, min_objects,
                                           max_objects, min_size, max_size, max_iou)
    # 2. stuff bands, top to bottom
    heights = _band_heights(rng, h)
    stuff_labels = rng.permutation(len(TOY_STUFF_CLASSES))[:len(heights)]
    img = np.concatenate([_texture(rng, TOY_STUFF_CLASSES[s], bh, w)
                          for s, bh in zip(stuff_labels, heights)])  # [H, W, 3]
    band_of_row = np.repeat(np.arange(len(heights)), heights)  # [H]
    seg = np.broadcast_to(band_of_row[:, None] + len(objects) + 1, (h, w)).copy()
    # 3. things on top; a shape's tight box is its whole square (see shape_mask)
    for k, obj in enumerate(objects):
        x, y, size = int(obj['bbox'][0]), int(obj['bbox'][1]), int(obj['bbox'][2])
        mask = shape_mask(TOY_THING_CLASSES[obj['label']], size)
        img[y:y + size, x:x + size][mask] = shapes_img[y:y + size, x:x + size][mask]
        seg[y:y + size, x:x + size][mask] = k + 1
    categories = [obj['label'] + 1 for obj in objects]
    categories += [len(TOY_THING_CLASSES) + int(s) + 1 for s in stuff_labels]
    return img, *_drop_empty(seg, categories)


def _drop_empty(seg: np.ndarray, categories: List[int]) -> Tuple[np.ndarray, List[int]]:
    """Renumber segments 1..S' after removing those with no pixel."""
    present = np.bincount(seg.ravel(), minlength=len(categories) + 1)[1:] > 0
    if present.all():
        return seg, categories
    new_id = np.concatenate([[0], np.cumsum(present)])  # old id -> new id
    return new_id[seg], [c for c, p in zip(categories, present) if p]


def _bbox_xywh(mask: np.ndarray) -> List[int]:
    """Tight [x, y, w, h] of a non-empty bool mask [H, W] (w = max_x - min_x + 1)."""
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1)]


def _categories() -> List[Dict[str, Any]]:
    things = [dict(id=i + 1, name=n, supercategory='shape', isthing=1)
              for i, n in enumerate(TOY_THING_CLASSES)]
    stuff = [dict(id=len(things) + i + 1, name=n, supercategory='texture', isthing=0)
             for i, n in enumerate(TOY_STUFF_CLASSES)]
    return things + stuff


def _write_split(out_dir: str, split: str, num: int, seed: int, hw: Tuple[int, int],
                 render_args: Sequence[Any]) -> Dict[str, Any]:
    """Render one split and write its images, PNGs and two JSON files.

    Segment ids run 1, 2, ... over the whole split (never reused by another
    image): mmdet's COCOPanoptic indexes segments by id, and ids shared by
    many images make its per-image look-up quadratic in the split size.
    """
    img_dir = osp.join(out_dir, split)
    seg_dir = osp.join(out_dir, 'annotations', f'panoptic_{split}')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(seg_dir, exist_ok=True)
    images, panoptic_anns, instance_anns = [], [], []
    next_id = 1
    for img_id in range(1, num + 1):
        rng = np.random.default_rng([seed, _SPLIT_IDS[split], img_id])
        img, seg, cats = render_toy_panoptic(rng, hw, *render_args)
        file_name = f'{img_id:06d}.png'
        seg = np.where(seg > 0, seg + next_id - 1, 0)  # split-wide ids
        Image.fromarray(img).save(osp.join(img_dir, file_name), format='PNG')
        Image.fromarray(segment_ids_to_rgb(seg)).save(osp.join(seg_dir, file_name), format='PNG')
        images.append(dict(id=img_id, file_name=file_name, height=hw[0], width=hw[1]))
        segments = []
        for k, cat in enumerate(cats):
            mask = seg == next_id + k
            segments.append(dict(id=next_id + k, category_id=cat, iscrowd=0,
                                 bbox=_bbox_xywh(mask), area=int(mask.sum())))
            if cat <= len(TOY_THING_CLASSES):
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                rle['counts'] = rle['counts'].decode('ascii')
                instance_anns.append(dict(
                    id=len(instance_anns) + 1, image_id=img_id, category_id=cat,
                    segmentation=rle, area=float(mask.sum()),
                    bbox=[float(v) for v in _bbox_xywh(mask)], iscrowd=0))
        next_id += len(cats)
        panoptic_anns.append(dict(image_id=img_id, file_name=file_name, segments_info=segments))
    info = dict(description=f'toy panoptic ({split})', version='1.0')  # no date: reruns match
    categories = _categories()
    panoptic_file = osp.join(out_dir, 'annotations', f'panoptic_{split}.json')
    instances_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
    with open(panoptic_file, 'w') as f:
        json.dump(dict(info=info, licenses=[], images=images, annotations=panoptic_anns,
                       categories=categories), f)
    with open(instances_file, 'w') as f:
        json.dump(dict(info=info, licenses=[], images=images, annotations=instance_anns,
                       categories=categories[:len(TOY_THING_CLASSES)]), f)
    return dict(img_dir=img_dir, panoptic_ann_file=panoptic_file, panoptic_seg_dir=seg_dir,
                instances_ann_file=instances_file, num_images=num,
                num_segments=next_id - 1, num_things=len(instance_anns))


def make_toy_panoptic(out_dir: Union[str, os.PathLike],
                      num_train: int = 1000,
                      num_val: int = 200,
                      img_size: Union[int, Sequence[int]] = 128,
                      seed: int = 0,
                      min_objects: int = 1,
                      max_objects: int = 4,
                      min_size: int = 16,
                      max_size: int = 48,
                      max_iou: float = 0.1) -> Dict[str, Any]:
    """Write a toy panoptic data set (see the module docstring for the layout).

    Image ``i`` of a split is drawn from ``default_rng([seed, split, i])``
    (split 0 train, 1 val), as in :func:`make_toy_coco`. Existing files with
    the same names are overwritten.

    Args:
        out_dir (str | os.PathLike): Root folder.
        num_train, num_val (int): Images per split (0 writes an empty split).
        img_size (int | Sequence[int]): Side, or (height, width), in pixels.
        seed (int): Non-negative base seed.
        min_objects, max_objects (int): Things per image, inclusive range.
        min_size, max_size (int): Side of a shape's box in pixels, inclusive.
        max_iou (float): Largest box IoU allowed between two things.

    Returns:
        dict: ``out_dir``, ``thing_classes``, ``stuff_classes``, ``classes``
        (things then stuff, the order of category ids 1-7) and, per split,
        ``{'img_dir', 'panoptic_ann_file', 'panoptic_seg_dir',
        'instances_ann_file', 'num_images', 'num_segments', 'num_things'}``.

    Raises:
        ValueError: If an argument is invalid; the message names it.
        RuntimeError: If ``min_objects`` shapes cannot be fitted in an image.
    """
    hw, _ = _check_args(img_size, TOY_THING_CLASSES, num_train, num_val, min_objects,
                        max_objects, min_size, max_size, max_iou, 0.0, seed)
    out_dir = str(out_dir)
    result: Dict[str, Any] = dict(out_dir=out_dir, thing_classes=TOY_THING_CLASSES,
                                  stuff_classes=TOY_STUFF_CLASSES,
                                  classes=TOY_THING_CLASSES + TOY_STUFF_CLASSES)
    render_args = (min_objects, max_objects, min_size, max_size, max_iou)
    for split, num in (('train', num_train), ('val', num_val)):
        result[split] = _write_split(out_dir, split, num, seed, hw, render_args)
    return result

"""The toy coloured-shapes set in Pascal VOC's layout, for mmdet's ``VOCDataset``.

The same pictures as :func:`~mmdet_detr_plugin.datasets.make_toy_coco` with
the same arguments (each image is drawn from the same seeded stream), packed
the way the VOC 2007 + 2012 detection benchmark is::

    out_dir/VOCdevkit/VOC2007/JPEGImages/000001.jpg ...
    out_dir/VOCdevkit/VOC2007/Annotations/000001.xml ...
    out_dir/VOCdevkit/VOC2007/ImageSets/Main/trainval.txt   (ids, one a line)
    out_dir/VOCdevkit/VOC2007/ImageSets/Main/test.txt
    out_dir/VOCdevkit/VOC2012/{JPEGImages,Annotations}/2012_000501.{jpg,xml} ...
    out_dir/VOCdevkit/VOC2012/ImageSets/Main/trainval.txt   (VOC2012's test set is not public)

The ``num_train`` training images of the COCO set are split between the two
years: the first ``ceil(num_train / 2)`` are VOC2007 trainval (ids
``000001``...), the others VOC2012 trainval (ids ``2012_<index>``, the index
running on); the ``num_val`` validation images are VOC2007 test (ids
``test_000001``...). So training on 07+12 trainval and testing on 07 test sees
exactly the pictures and boxes of the COCO set's train and val splits.

Annotations follow VOC's XML: ``size`` (width, height, depth) and one
``object`` per shape with ``name`` (the class name), ``pose``, ``truncated``
and ``difficult`` (always 0: every shape is whole and plain to see) and
``bndbox`` in VOC's 1-based, inclusive pixel indices. A COCO box
``(x, y, w, h)`` (pixel edges, 0-based) covers pixel columns ``x`` to
``x + w - 1``, so it is written as ``xmin = x + 1``, ``xmax = x + w`` (rows
likewise); mmdet's ``VOCDataset`` subtracts 1 and reads
``[x, y, x + w - 1, y + h - 1]``, the inclusive corners that ``VOCMetric``
scores with its ``+ 1`` widths. Images are JPEG (``VOCDataset`` reads
``<id>.jpg`` only) at quality 95 without chroma subsampling, so the shapes'
edges stay sharp; pixels differ from the PNGs by compression noise of a few
levels.
"""
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from .toy_shapes import (_SPLIT_IDS, TOY_CLASSES, _check_args, _resolve_noise,
                         _sizes_in_pixels, render_toy_image)

JPEG_QUALITY = 95


def voc_splits(num_train: int, num_val: int) -> List[Tuple[str, str, str, List[int]]]:
    """Where each drawn image goes: ``(year, image set, COCO split, indices)``.

    Example::

        >>> voc_splits(5, 2)
        [('VOC2007', 'trainval', 'train', [1, 2, 3]),
         ('VOC2012', 'trainval', 'train', [4, 5]),
         ('VOC2007', 'test', 'val', [1, 2])]
    """
    num_2007 = (num_train + 1) // 2
    return [('VOC2007', 'trainval', 'train', list(range(1, num_2007 + 1))),
            ('VOC2012', 'trainval', 'train', list(range(num_2007 + 1, num_train + 1))),
            ('VOC2007', 'test', 'val', list(range(1, num_val + 1)))]


def voc_image_id(year: str, image_set: str, index: int) -> str:
    """The VOC id of image ``index`` of a COCO split (see the module docstring)."""
    if image_set == 'test':
        return f'test_{index:06d}'
    return f'{index:06d}' if year == 'VOC2007' else f'2012_{index:06d}'


def voc_box(bbox: Sequence[float]) -> Tuple[int, int, int, int]:
    """COCO ``(x, y, w, h)`` in pixel edges -> VOC ``(xmin, ymin, xmax, ymax)``,
    1-based inclusive pixel indices.

    Example: a 3 x 2 box at the top-left corner, ``(0, 0, 3, 2)``, covers
    pixels 1..3 and rows 1..2 counted from 1: ``(1, 1, 3, 2)``.
    """
    x, y, w, h = (int(v) for v in bbox)
    return x + 1, y + 1, x + w, y + h


def _sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = str(text)
    return node


def voc_annotation_xml(year: str, file_name: str, img_size: Tuple[int, int],
                       objects: List[Dict[str, Any]], classes: Sequence[str]) -> bytes:
    """One VOC annotation file.

    Args:
        year (str): ``'VOC2007'`` or ``'VOC2012'`` (the ``folder`` element).
        file_name (str): The image's file name, ``<id>.jpg``.
        img_size (tuple[int, int]): (height, width).
        objects (list[dict]): :func:`render_toy_image`'s objects, each with a
            ``label`` into ``classes`` and a COCO ``bbox`` (x, y, w, h).
        classes (Sequence[str]): Class names.

    Returns:
        bytes: UTF-8 XML, indented, without a declaration (as VOC's own files).
    """
    root = ET.Element('annotation')
    _sub(root, 'folder', year)
    _sub(root, 'filename', file_name)
    source = _sub(root, 'source')
    _sub(source, 'database', 'toy shapes')
    size = _sub(root, 'size')
    _sub(size, 'width', img_size[1])
    _sub(size, 'height', img_size[0])
    _sub(size, 'depth', 3)
    _sub(root, 'segmented', 0)
    for obj in objects:
        node = _sub(root, 'object')
        _sub(node, 'name', classes[obj['label']])
        _sub(node, 'pose', 'Unspecified')
        _sub(node, 'truncated', 0)  # shapes lie wholly inside the image
        _sub(node, 'difficult', 0)
        box = _sub(node, 'bndbox')
        for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), voc_box(obj['bbox'])):
            _sub(box, tag, value)
    ET.indent(root, space='\t')
    return ET.tostring(root, encoding='utf-8') + b'\n'


def make_toy_voc(out_dir: Union[str, os.PathLike],
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
    """Write the toy-shapes detection set in Pascal VOC's layout.

    The arguments are :func:`make_toy_coco`'s, with the same meaning and
    checks; ``num_train`` images are split between VOC2007 and VOC2012
    trainval, ``num_val`` make VOC2007 test (module docstring). Existing
    files with the same names are overwritten.

    Returns:
        dict: ``out_dir`` (the ``VOCdevkit`` folder, the ``data_root`` of a
        VOC config), ``classes`` and ``subsets``, keyed ``'VOC2007/trainval'``,
        ``'VOC2012/trainval'``, ``'VOC2007/test'``, each
        ``{'ids_file', 'ids', 'num_images', 'num_instances'}``.

    Raises:
        ValueError: If an argument is invalid; the message names it.
        RuntimeError: If ``min_objects`` shapes cannot be fitted in an image.
    """
    min_size, max_size = _sizes_in_pixels(img_size, size_range, min_size, max_size)
    noise_std = _resolve_noise(background, noise_std)
    hw, names = _check_args(img_size, classes, num_train, num_val, min_objects, max_objects,
                            min_size, max_size, max_iou, noise_std, seed)
    devkit = osp.join(str(out_dir), 'VOCdevkit')
    result: Dict[str, Any] = dict(out_dir=devkit, classes=names, subsets={})
    for year, image_set, split, indices in voc_splits(num_train, num_val):
        year_dir = osp.join(devkit, year)
        for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
            os.makedirs(osp.join(year_dir, sub), exist_ok=True)
        ids, num_instances = [], 0
        for index in indices:
            # the stream make_toy_coco draws image `index` of `split` from
            rng = np.random.default_rng([seed, _SPLIT_IDS[split], index])
            img, objects = render_toy_image(rng, hw, names, min_objects, max_objects,
                                            min_size, max_size, max_iou, noise_std,
                                            background)
            img_id = voc_image_id(year, image_set, index)
            Image.fromarray(img).save(osp.join(year_dir, 'JPEGImages', f'{img_id}.jpg'),
                                      format='JPEG', quality=JPEG_QUALITY, subsampling=0)
            with open(osp.join(year_dir, 'Annotations', f'{img_id}.xml'), 'wb') as f:
                f.write(voc_annotation_xml(year, f'{img_id}.jpg', hw, objects, names))
            ids.append(img_id)
            num_instances += len(objects)
        ids_file = osp.join(year_dir, 'ImageSets', 'Main', f'{image_set}.txt')
        with open(ids_file, 'w') as f:
            f.write(''.join(f'{i}\n' for i in ids))
        result['subsets'][f'{year}/{image_set}'] = dict(
            ids_file=ids_file, ids=ids, num_images=len(ids), num_instances=num_instances)
    return result

"""Write the toy coloured-shapes data set: detection (COCO or Pascal VOC layout), or COCO
panoptic.

Examples::

    python tools/misc/make_toy_dataset.py --out-dir data/toy \
        --num-train 1000 --num-val 200 --img-size 128 --max-objects 4 --seed 0
    python tools/misc/make_toy_dataset.py --variant hard  # into data/toy-hard
    python tools/misc/make_toy_dataset.py --variant hard-b --num-train 0  # val only
    python tools/misc/make_toy_dataset.py --size-range 0.10 0.33 \
        --background noisy-gradient --noise-std 4 --out-dir data/toy-custom
    python tools/misc/make_toy_dataset.py --panoptic --out-dir data/toy_panoptic \
        --num-train 1000 --num-val 200 --img-size 128 --seed 0
    python tools/misc/make_toy_dataset.py --format voc  # data/toy_voc/VOCdevkit/

``--format voc`` writes the same pictures and boxes as the COCO set, in VOC's
layout: the training images split between VOC2007 and VOC2012 trainval, the
validation images as VOC2007 test (``mmdet_detr_plugin/datasets/toy_voc.py``).

A ``--variant`` sets every option it names (see ``TOY_VARIANTS`` in
``mmdet_detr_plugin/datasets/toy_shapes.py``); a flag given as well overrides
it. ``--min-size`` / ``--max-size`` replace the variant's ``--size-range``
(an unset one of the two takes its plain default), and ``--background``
replaces the variant's noise level (unless ``--noise-std`` is given too).
"""
import argparse
import os.path as osp
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

try:
    from mmdet_detr_plugin.datasets import (TOY_CLASSES, make_toy_coco, make_toy_panoptic,
                                            make_toy_voc)
    from mmdet_detr_plugin.datasets.toy_shapes import BACKGROUNDS, TOY_VARIANTS
except ModuleNotFoundError as e:
    # Not installed: run from a checkout by putting the repo root on the path.
    # Any other missing module is a real error and must surface as is.
    if e.name != 'mmdet_detr_plugin':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    from mmdet_detr_plugin.datasets import (TOY_CLASSES, make_toy_coco, make_toy_panoptic,
                                            make_toy_voc)
    from mmdet_detr_plugin.datasets.toy_shapes import BACKGROUNDS, TOY_VARIANTS

# Every option parses to None when not given, so that a variant or the generator's own
# default applies, and --panoptic can reject the detection-only ones.
SHARED = ('num_train', 'num_val', 'img_size', 'min_objects', 'max_objects', 'min_size',
          'max_size', 'max_iou', 'seed')
DETECTION_ONLY = ('variant', 'format', 'classes', 'size_range', 'background', 'noise_std')


def describe_variant(name: str) -> str:
    """One line with the numbers of a :data:`TOY_VARIANTS` entry."""
    v = TOY_VARIANTS[name]
    lo, hi = v['size_range']
    return (f"{name}: {v['num_train']} train / {v['num_val']} val images at {v['img_size']} "
            f"px, {v['min_objects']}-{v['max_objects']} objects, sides {lo:.0%}-{hi:.0%} of "
            f"the image, {v['background']} background (noise std {v['noise_std']:g}), "
            f"seed {v['seed']}")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--panoptic', action='store_true',
                        help='write the panoptic set (shapes over textured stuff bands)')
    parser.add_argument('--format', choices=('coco', 'voc'), default=None,
                        help='layout of the detection set: coco (default; train/, val/, '
                        'annotations/*.json) or voc (VOCdevkit/VOC2007 trainval + test, '
                        'VOCdevkit/VOC2012 trainval; XML annotations, JPEG images)')
    parser.add_argument('--variant', choices=sorted(TOY_VARIANTS), default=None,
                        help='a harder detection set; ' + '; '.join(
                            describe_variant(n) for n in sorted(TOY_VARIANTS)).replace('%', '%%'))
    parser.add_argument('--out-dir', default=None,
                        help='output root folder (default data/toy, data/toy-<variant>, '
                        'data/toy_voc, data/toy-<variant>_voc or data/toy_panoptic)')
    parser.add_argument('--num-train', type=int, default=None, help='default 1000')
    parser.add_argument('--num-val', type=int, default=None, help='default 200')
    parser.add_argument('--img-size', type=int, nargs='+', default=None,
                        help='side, or height and width, in pixels (default 128)')
    parser.add_argument('--classes', nargs='+', default=None,
                        help=f'subset of {" ".join(TOY_CLASSES)} (detection only)')
    parser.add_argument('--min-objects', type=int, default=None, help='default 1')
    parser.add_argument('--max-objects', type=int, default=None, help='default 4')
    parser.add_argument('--min-size', type=int, default=None,
                        help='smallest shape side in pixels (default 16)')
    parser.add_argument('--max-size', type=int, default=None,
                        help='largest shape side in pixels (default 48)')
    parser.add_argument('--size-range', type=float, nargs=2, default=None,
                        metavar=('LOW', 'HIGH'),
                        help='shape sides as fractions of the shorter image side, e.g. 0.10 '
                        '0.33; instead of --min-size/--max-size (detection only)')
    parser.add_argument('--max-iou', type=float, default=None,
                        help='largest box IoU between two objects (default 0.1)')
    parser.add_argument('--background', choices=BACKGROUNDS, default=None,
                        help='background kind (default flat; detection only)')
    parser.add_argument('--noise-std', type=float, default=None,
                        help='Gaussian noise std on the background (0-255; default 0, or 8 '
                        'for noisy-gradient; detection only)')
    parser.add_argument('--seed', type=int, default=None, help='default 0')
    return parser.parse_args(argv)


def _given(args: argparse.Namespace, keys: Sequence[str]) -> Dict[str, Any]:
    """The options among ``keys`` given on the command line (img_size made an int or pair)."""
    given = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    if 'img_size' in given:
        size = given['img_size']
        given['img_size'] = size[0] if len(size) == 1 else tuple(size)
    if 'size_range' in given:
        given['size_range'] = tuple(given['size_range'])
    return given


def make_panoptic(args: argparse.Namespace) -> str:
    """Write the panoptic set; return the summary line."""
    given = [f"--{k.replace('_', '-')}" for k in DETECTION_ONLY if getattr(args, k) is not None]
    if given:
        raise ValueError(f'{", ".join(given)} does not apply to --panoptic (the panoptic set '
                         'always has the four shapes, sizes in pixels and its textured stuff '
                         'backgrounds)')
    info = make_toy_panoptic(args.out_dir or 'data/toy_panoptic', **_given(args, SHARED))
    train, val = info['train'], info['val']
    return (f"toy panoptic: {train['num_images']} train / {val['num_images']} val images "
            f"({train['num_segments']} / {val['num_segments']} segments, things "
            f"{','.join(info['thing_classes'])}, stuff {','.join(info['stuff_classes'])}) "
            f"written to {info['out_dir']}")


def make_detection(args: argparse.Namespace) -> str:
    """Write the detection set, the variant's values under the given flags; return the
    summary line."""
    preset = dict(TOY_VARIANTS[args.variant]) if args.variant else {}
    given = _given(args, SHARED + DETECTION_ONLY[2:])
    # The variant's size range and noise level belong to its own size unit and background.
    if 'min_size' in given or 'max_size' in given:
        preset.pop('size_range', None)
    if 'background' in given:
        preset.pop('noise_std', None)
    voc = args.format == 'voc'
    out_dir = args.out_dir or ((f'data/toy-{args.variant}' if args.variant else 'data/toy')
                               + ('_voc' if voc else ''))
    info = (make_toy_voc if voc else make_toy_coco)(out_dir, **{**preset, **given})
    name = f'toy shapes ({args.variant})' if args.variant else 'toy shapes'
    if voc:
        sets = ', '.join(f"{key} {s['num_images']} images ({s['num_instances']} objects)"
                         for key, s in info['subsets'].items())
        return (f"{name}, VOC layout: {sets}; classes {','.join(info['classes'])}; written "
                f"to {info['out_dir']}")
    train, val = info['train'], info['val']
    return (f"{name}: {train['num_images']} train / {val['num_images']} val images "
            f"({train['num_instances']} / {val['num_instances']} objects, "
            f"classes {','.join(info['classes'])}) written to {info['out_dir']}")


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = (make_panoptic if args.panoptic else make_detection)(args)
    except (ValueError, RuntimeError) as e:
        sys.exit(f'make_toy_dataset: error: {e}')
    print(f'{summary} in {time.perf_counter() - start:.1f}s')


if __name__ == '__main__':
    main()

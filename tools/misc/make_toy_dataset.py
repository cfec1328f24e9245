"""Write the toy coloured-shapes data set: COCO detection, or COCO panoptic.

Examples::

    python tools/misc/make_toy_dataset.py --out-dir data/toy \
        --num-train 1000 --num-val 200 --img-size 128 --max-objects 4 --seed 0
    python tools/misc/make_toy_dataset.py --panoptic --out-dir data/toy_panoptic \
        --num-train 1000 --num-val 200 --img-size 128 --seed 0
"""
import argparse
import os.path as osp
import sys
import time
from typing import List, Optional

try:
    from mmdet_detr_plugin.datasets import TOY_CLASSES, make_toy_coco, make_toy_panoptic
except ModuleNotFoundError as e:
    # Not installed: run from a checkout by putting the repo root on the path.
    # Any other missing module is a real error and must surface as is.
    if e.name != 'mmdet_detr_plugin':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    from mmdet_detr_plugin.datasets import TOY_CLASSES, make_toy_coco, make_toy_panoptic

# Options of the detection set only, with their defaults; they parse to None when not
# given, so that --panoptic can reject them.
DETECTION_ONLY = {'classes': list(TOY_CLASSES), 'noise_std': 0.0}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--panoptic', action='store_true',
                        help='write the panoptic set (shapes over textured stuff bands)')
    parser.add_argument('--out-dir', default=None,
                        help='output root folder (default data/toy, or data/toy_panoptic)')
    parser.add_argument('--num-train', type=int, default=1000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--img-size', type=int, nargs='+', default=[128],
                        help='side, or height and width, in pixels')
    parser.add_argument('--classes', nargs='+', default=None,
                        help=f'subset of {" ".join(TOY_CLASSES)} (detection only)')
    parser.add_argument('--min-objects', type=int, default=1)
    parser.add_argument('--max-objects', type=int, default=4)
    parser.add_argument('--min-size', type=int, default=16, help='smallest shape side')
    parser.add_argument('--max-size', type=int, default=48, help='largest shape side')
    parser.add_argument('--max-iou', type=float, default=0.1,
                        help='largest box IoU between two objects')
    parser.add_argument('--noise-std', type=float, default=None,
                        help='Gaussian noise std on the background (0-255; detection only)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def make_panoptic(args: argparse.Namespace, img_size) -> str:
    """Write the panoptic set; return the summary line."""
    given = [f"--{k.replace('_', '-')}" for k in DETECTION_ONLY if getattr(args, k) is not None]
    if given:
        raise ValueError(f'{", ".join(given)} does not apply to --panoptic (the panoptic set '
                         'always has the four shapes and no noise)')
    info = make_toy_panoptic(args.out_dir or 'data/toy_panoptic', num_train=args.num_train,
                             num_val=args.num_val, img_size=img_size, seed=args.seed,
                             min_objects=args.min_objects, max_objects=args.max_objects,
                             min_size=args.min_size, max_size=args.max_size,
                             max_iou=args.max_iou)
    train, val = info['train'], info['val']
    return (f"toy panoptic: {train['num_images']} train / {val['num_images']} val images "
            f"({train['num_segments']} / {val['num_segments']} segments, things "
            f"{','.join(info['thing_classes'])}, stuff {','.join(info['stuff_classes'])}) "
            f"written to {info['out_dir']}")


def make_detection(args: argparse.Namespace, img_size) -> str:
    """Write the detection set; return the summary line."""
    for key, default in DETECTION_ONLY.items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    info = make_toy_coco(args.out_dir or 'data/toy', num_train=args.num_train,
                         num_val=args.num_val, img_size=img_size, classes=args.classes,
                         min_objects=args.min_objects, max_objects=args.max_objects,
                         seed=args.seed, min_size=args.min_size, max_size=args.max_size,
                         max_iou=args.max_iou, noise_std=args.noise_std)
    train, val = info['train'], info['val']
    return (f"toy shapes: {train['num_images']} train / {val['num_images']} val images "
            f"({train['num_instances']} / {val['num_instances']} objects, "
            f"classes {','.join(info['classes'])}) written to {info['out_dir']}")


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    img_size = args.img_size[0] if len(args.img_size) == 1 else tuple(args.img_size)
    start = time.perf_counter()
    try:
        summary = (make_panoptic if args.panoptic else make_detection)(args, img_size)
    except (ValueError, RuntimeError) as e:
        sys.exit(f'make_toy_dataset: error: {e}')
    print(f'{summary} in {time.perf_counter() - start:.1f}s')


if __name__ == '__main__':
    main()

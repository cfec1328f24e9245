"""Convert a checkpoint of the original DETR release to the plugin's layout.

    python tools/model_converters/detr_original_to_plugin.py SRC DST
        [--num-classes 80] [--no-class-map] [--config CONFIG]

SRC: a release file (detr-r50-e632da11.pth, detr-r101, the DC5 variants, a
UP-DETR fine-tuned checkpoint...). DST loads with ``tools/test.py CONFIG DST``
and ``tools/demo.py``, e.g. with ``configs/detr_r50_coco.py``. By default the
92 classifier rows of the release (COCO category ids 0..90, then no-object)
become mmdet's 80 COCO labels + no-object, and DST records mmdet's COCO class
names. ``--no-class-map`` keeps the rows of a checkpoint fine-tuned on K
classes (give ``--num-classes K``). ``--config`` checks that DST loads
strictly into that config's model (depth, layer counts, classes).
"""
import argparse
import sys

import torch

from mmdet_detr_plugin.converters import OriginalCheckpointError, convert_original, \
    load_release_file


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='checkpoint of the original DETR release')
    parser.add_argument('dst', help='where to write the plugin checkpoint')
    parser.add_argument('--num-classes', type=int, default=80,
                        help='classes of the target model (no-object excluded); default 80')
    parser.add_argument('--no-class-map', action='store_true',
                        help='keep the classifier rows as they are (a checkpoint fine-tuned '
                        'on --num-classes classes) instead of mapping COCO ids to labels')
    parser.add_argument('--config', help='check that the result loads strictly into the '
                        'model of this config')
    return parser.parse_args()


def build_reference(config: str) -> dict:
    """State dict of the (untrained) model of ``config``: names and shapes."""
    from mmengine.config import Config

    import mmdet_detr_plugin  # noqa: F401  (registers the plugin)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    # no pretrained weights are read: building does not run init_weights
    return MODELS.build(cfg.model).state_dict()


def main() -> None:
    args = parse_args()
    reference = build_reference(args.config) if args.config else None
    try:
        state_dict, others = load_release_file(args.src)
        result = convert_original(state_dict, num_classes=args.num_classes,
                                  class_map=None if args.no_class_map else 'coco',
                                  reference=reference)
    except OriginalCheckpointError as err:
        sys.exit(f'{args.src}: {err}')

    meta = dict(source=args.src)
    if result.coco_mapped:
        from mmdet.datasets import CocoDataset
        # classes and palette, as mmengine's Runner records dataset_meta
        meta['dataset_meta'] = {k: v for k, v in CocoDataset.METAINFO.items()}
    torch.save(dict(state_dict=result.state_dict, meta=meta), args.dst)

    print(f'read {args.src}: {result.arch.describe()} (a DC5 dilation does not show in '
          'the weights: pick the config that matches the file)')
    if others:
        print(f'ignored entries of the file: {", ".join(map(str, others))}')
    if result.dropped:
        print(f'dropped {len(result.dropped)} key(s) without a counterpart in PluginDETR: '
              f'{", ".join(result.dropped)}')
    rows = result.state_dict['bbox_head.fc_cls.weight'].shape[0]
    print('classifier: ' + ('91 COCO category ids -> mmdet\'s 80 COCO labels' if
                            result.coco_mapped else f'{rows - 1} classes kept as they are')
          + ' + no-object')
    if reference is not None:
        print(f'checked against {args.config}: loads strictly')
    print(f'wrote {len(result.state_dict)} tensors to {args.dst}')


if __name__ == '__main__':
    main()

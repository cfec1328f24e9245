"""Convert a checkpoint of the original DETR release to the plugin's layout.

    python tools/model_converters/detr_original_to_plugin.py SRC DST
        [--num-classes K] [--no-class-map] [--config CONFIG]

SRC: a release file, either kind, told apart by its keys:

* a box model (detr-r50-e632da11.pth, detr-r101, the DC5 variants, a UP-DETR
  fine-tuned checkpoint...) -> ``PluginDETR``, e.g. ``configs/detr_r50_coco.py``;
  its 92 classifier rows (COCO category ids 0..90, then no-object) become
  mmdet's 80 COCO labels + no-object;
* a panoptic model (detr-r50-panoptic, detr-r50-dc5-panoptic,
  detr-r101-panoptic: ``detr.*``, ``bbox_attention.*``, ``mask_head.*``) ->
  ``PluginDETRPanoptic``; its 251 rows (COCO panoptic ids 0..249, then
  no-object) become mmdet's 133 ``CocoPanopticDataset`` labels + no-object.

DST records which kind was found (``meta['release_layout']``: ``'box'`` or
``'panoptic'``) and, when the rows were mapped, mmdet's class names
(``meta['dataset_meta']``). ``--no-class-map`` keeps the rows of a checkpoint
fine-tuned on K classes (give ``--num-classes K``; default 80 for a box
model, 133 for a panoptic one). ``--config`` checks that DST loads strictly
into that config's model (depth, layer counts, classes, mask head).
"""
import argparse
import sys

import torch

from mmdet_detr_plugin.converters import OriginalCheckpointError, convert_original, \
    load_release_file


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='checkpoint of the original DETR release (box or panoptic)')
    parser.add_argument('dst', help='where to write the plugin checkpoint')
    parser.add_argument('--num-classes', type=int, default=None,
                        help='classes of the target model (no-object excluded); default 80 '
                        'for a box checkpoint, 133 for a panoptic one')
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

    layout = 'panoptic' if result.panoptic else 'box'
    meta = dict(source=args.src, release_layout=layout)
    if result.coco_mapped:
        from mmdet.datasets import CocoDataset, CocoPanopticDataset
        dataset = CocoPanopticDataset if result.panoptic else CocoDataset
        # classes and palette, as mmengine's Runner records dataset_meta
        meta['dataset_meta'] = {k: v for k, v in dataset.METAINFO.items()}
    torch.save(dict(state_dict=result.state_dict, meta=meta), args.dst)

    print(f'read {args.src}: ' + ('a panoptic DETR (detr.*, bbox_attention.*, mask_head.*) '
                                  '-> PluginDETRPanoptic' if result.panoptic else
                                  'a box DETR -> PluginDETR'))
    print(f'  {result.arch.describe()} (a DC5 dilation does not show in the weights: pick '
          'the config that matches the file)')
    if others:
        print(f'ignored entries of the file: {", ".join(map(str, others))}')
    if result.dropped:
        print(f'dropped {len(result.dropped)} key(s) without a counterpart in PluginDETR: '
              f'{", ".join(result.dropped)}')
    rows = result.state_dict['bbox_head.fc_cls.weight'].shape[0]
    if result.coco_mapped:
        mapped = ("COCO panoptic's category ids -> mmdet's 133 COCO panoptic labels"
                  if result.panoptic else "91 COCO category ids -> mmdet's 80 COCO labels")
    else:
        mapped = f'{rows - 1} classes kept as they are'
    print(f'classifier: {mapped} + no-object')
    if reference is not None:
        print(f'checked against {args.config}: loads strictly')
    print(f'wrote {len(result.state_dict)} tensors to {args.dst}')


if __name__ == '__main__':
    main()

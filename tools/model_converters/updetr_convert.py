"""Convert UP-DETR's pre-trained checkpoint (the reference release's layout,
``up-detr-pre-training-60ep-imagenet.pth``) to the plugin.

    python tools/model_converters/updetr_convert.py SRC DST [--to pretrain|finetune]
        [--config CONFIG]

``--to pretrain`` (default): DST loads strictly into ``PluginUPDETR``
(``configs/up-detr-pretrain_r50_8xb32-60e_in1k.py``), to continue the
pre-training (``--cfg-options load_from=DST``). ``--to finetune``: DST is a
``PluginDETR`` start without the classifier and the pre-training heads, for
``configs/up-detr_r50_8xb2-300e_coco.py`` (``load_from=DST``). ``--config``
checks that DST fits that config's model (names and shapes).
"""
import argparse
import os.path as osp
import sys

import torch

try:
    from mmdet_detr_plugin.converters import OriginalCheckpointError, load_release_file
except ModuleNotFoundError as e:  # run from a checkout without installing
    if e.name != 'mmdet_detr_plugin':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    from mmdet_detr_plugin.converters import OriginalCheckpointError, load_release_file
from mmdet_detr_plugin.converters.updetr import updetr_to_plugin


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='UP-DETR pre-training checkpoint (reference layout)')
    parser.add_argument('dst', help='where to write the plugin checkpoint')
    parser.add_argument('--to', choices=('pretrain', 'finetune'), default='pretrain',
                        help='PluginUPDETR (everything) or a PluginDETR fine-tuning start')
    parser.add_argument('--config', help='check the result against the model of this config')
    return parser.parse_args()


def check_against(config: str, state_dict: dict, target: str) -> None:
    from mmengine.config import Config

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    own = MODELS.build(cfg.model).state_dict()
    own = {k: v for k, v in own.items() if not k.endswith('num_batches_tracked')}
    if target == 'finetune':  # the classifier starts afresh
        own = {k: v for k, v in own.items() if not k.startswith('bbox_head.fc_cls.')}
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own and not k.endswith('num_batches_tracked')]
    shapes = [f'{k} {list(state_dict[k].shape)} (model {list(v.shape)})'
              for k, v in own.items() if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or shapes:
        sys.exit(f'the result does not fit {config}:\n  missing: {missing}\n  unexpected: '
                 f'{unexpected}\n  shapes: {shapes}')


def main() -> None:
    args = parse_args()
    try:
        state_dict, others = load_release_file(args.src)
        out, left_out = updetr_to_plugin(state_dict, args.to)
    except OriginalCheckpointError as err:
        sys.exit(f'{args.src}: {err}')
    if args.config:
        check_against(args.config, out, args.to)
    torch.save(dict(state_dict=out, meta=dict(source=args.src, updetr_target=args.to)),
               args.dst)
    if others:
        print(f'ignored entries of the file: {", ".join(map(str, others))}')
    if left_out:
        print(f'left out (fine-tuning start): {", ".join(left_out)}')
    if args.config:
        print(f'checked against {args.config}')
    print(f'wrote {len(out)} tensors ({args.to}) to {args.dst}')


if __name__ == '__main__':
    main()

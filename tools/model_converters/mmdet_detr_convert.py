"""Convert a checkpoint between mmdet's ``DETR`` and the plugin's ``PluginDETR``.

    python tools/model_converters/mmdet_detr_convert.py SRC DST --to plugin|mmdet

Keeps ``meta`` (classes etc.) and drops optimizer and message-hub state. A
plugin checkpoint of the 0.1.0 layout (queries on the detector) is upgraded
first.
"""
import argparse

import torch

from mmdet_detr_plugin.converters import mmdet_to_plugin, plugin_to_mmdet, \
    upgrade_plugin_state_dict
from mmdet_detr_plugin.utils.checkpoint_compat import allow_mmengine_checkpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='source checkpoint')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--to', choices=['plugin', 'mmdet'], required=True,
                        help='layout of the output')
    args = parser.parse_args()
    allow_mmengine_checkpoints()  # mmengine's checkpoints hold its MessageHub
    ckpt = torch.load(args.src, map_location='cpu', weights_only=True)
    state = ckpt.get('state_dict', ckpt)
    try:
        if args.to == 'plugin':
            state = mmdet_to_plugin(state)
        else:
            state = plugin_to_mmdet(upgrade_plugin_state_dict(state)[0])
    except KeyError as err:
        raise SystemExit(f'{args.src}: {err.args[0]}')
    out = dict(state_dict=state)
    if 'meta' in ckpt:
        out['meta'] = ckpt['meta']
    torch.save(out, args.dst)
    print(f'wrote {len(state)} tensors in the {args.to} layout to {args.dst}')


if __name__ == '__main__':
    main()

"""Convert a checkpoint between mmdet's ``DETR`` and the plugin's ``PluginDETR``.

    python tools/model_converters/mmdet_detr_convert.py SRC DST --to plugin|mmdet

Keeps ``meta`` (classes etc.) and drops optimizer and message-hub state.
"""
import argparse

import torch

from mmdet_detr_plugin.utils import mmdet_to_plugin, plugin_to_mmdet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='source checkpoint')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--to', choices=['plugin', 'mmdet'], required=True,
                        help='layout of the output')
    args = parser.parse_args()
    ckpt = torch.load(args.src, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    convert = mmdet_to_plugin if args.to == 'plugin' else plugin_to_mmdet
    try:
        state = convert(state)
    except KeyError as err:
        raise SystemExit(f'{args.src}: {err.args[0]}')
    out = dict(state_dict=state)
    if 'meta' in ckpt:
        out['meta'] = ckpt['meta']
    torch.save(out, args.dst)
    print(f'wrote {len(state)} tensors in the {args.to} layout to {args.dst}')


if __name__ == '__main__':
    main()

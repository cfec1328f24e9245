"""Convert a checkpoint between transformers' ``DetrForObjectDetection`` and ``PluginDETR``.

    python tools/model_converters/hf_detr_convert.py SRC DST --to plugin|hf

``--to plugin``: SRC is a transformers DETR state dict with a transformers
ResNet backbone (``use_timm_backbone=False``): a ``save_pretrained`` folder,
its ``model.safetensors``, or a torch file of ``model.state_dict()``. DST is a
plugin checkpoint (``state_dict`` and ``meta``) that loads with
``tools/test.py CONFIG DST`` for a config of the same depth, layer counts and
classes.

``--to hf``: SRC is a plugin checkpoint (a plain DETR: learned queries,
post-norm, on an mmdet ResNet-50/101/152; the 0.1.0 layout is upgraded
first). DST is ``model.state_dict()`` for ``DetrForObjectDetection``: a
``.safetensors`` file when DST ends so, a torch file otherwise.

transformers itself is not needed: only its names are.
"""
import argparse
import os.path as osp
from typing import Dict

import torch
from torch import Tensor

from mmdet_detr_plugin.converters import hf_to_plugin, plugin_to_hf, upgrade_plugin_state_dict
from mmdet_detr_plugin.utils.checkpoint_compat import allow_mmengine_checkpoints


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='source checkpoint (file or save_pretrained folder)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--to', choices=['plugin', 'hf'], required=True,
                        help='layout of the output')
    return parser.parse_args()


def load_state_dict(path: str) -> Dict[str, Tensor]:
    """The state dict in ``path``: a ``.safetensors`` file, a folder holding
    ``model.safetensors``, or a torch file (bare, or under ``state_dict`` as
    mmengine saves it)."""
    if osp.isdir(path):
        path = osp.join(path, 'model.safetensors')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    allow_mmengine_checkpoints()  # mmengine's checkpoints hold its MessageHub
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    return ckpt.get('state_dict', ckpt)


def save_hf(state: Dict[str, Tensor], path: str) -> None:
    """transformers' state dict to ``path``; safetensors wants every tensor
    in storage of its own (the q/k/v projections are views of one)."""
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)


def main() -> None:
    args = parse_args()
    state = load_state_dict(args.src)
    try:
        if args.to == 'plugin':
            state = hf_to_plugin(state)
            torch.save(dict(state_dict=state, meta=dict(source=args.src)), args.dst)
        else:
            state = plugin_to_hf(upgrade_plugin_state_dict(state)[0])
            save_hf(state, args.dst)
    except (KeyError, ValueError) as err:  # keys of another layout, named
        raise SystemExit(f'{args.src}: {err.args[0]}')
    print(f'wrote {len(state)} tensors in the {args.to} layout to {args.dst}')


if __name__ == '__main__':
    main()

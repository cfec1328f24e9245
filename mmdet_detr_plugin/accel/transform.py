"""``accelerate(model, accel)``: the one transform that applies the speed
kernels ``model.accel`` asks for (``settings.py``) to a built model.

Every kernel replaces modules by faster forms of themselves holding the same
parameters (``replace.py``), or sets a field of an assigner, so state-dict
keys, checkpoints and (up to float rounding) outputs are the same in every
setting. A kernel applies only to the exact classes it was written for: a
module of another class (one of mmdet's, or a user's) is left as it is.
"""
from dataclasses import replace as replace_fields
from functools import partial
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.layers.attention import DetrAttention
from ..models.layers.transformer import (DetrEncoderLayer, DetrFFN,
                                         PluginDetrTransformerEncoder)
from ..models.task_modules.assigners.hungarian_assigner import PluginHungarianAssigner
from .cpu import choose_linear
from .dropout import FastDropout, check_generator
from .folded_bn import FoldedConv2d, fold_frozen_batchnorm
from .linear import OneDnnLinear, onednn_linear
from .matching import accelerate_assigner
from .replace import convert, rebuild
from .settings import AccelSettings, parse_accel
from .transformer import FastDetrAttention, FastDetrFFN, PackedEncoder, PackedEncoderLayer


def accelerate(model: nn.Module,
               accel: Union[str, dict, AccelSettings, None] = 'default') -> AccelSettings:
    """Apply the kernels of ``accel`` to ``model`` in place.

    Args:
        model (nn.Module): a built detector (``PluginDETR`` calls this at the
            end of its ``__init__``); any model with a ``backbone`` and
            heads made of the plugin's modules or mmdet's works.
        accel (str | dict | AccelSettings): ``'default'``, ``'reference'``
            or a dict of kernels (``settings.parse_accel``).

    Returns:
        AccelSettings: what was applied: ``linear`` resolved to
        ``'onednn'`` or ``'torch'``, ``channels_last`` False where the
        backbone has convolutions other than ``Conv2d``.
    """
    settings = parse_accel(accel)
    settings = replace_fields(settings, linear=choose_linear(settings.linear))
    if settings.dropout != 'torch':
        check_generator(settings.dropout)
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, nn.Module):
        if settings.fold_frozen_bn:
            fold_frozen_batchnorm(backbone)
        settings = replace_fields(
            settings, channels_last=settings.channels_last and to_channels_last(backbone))
    for name, child in list(model.named_children()):
        if child is not backbone:
            setattr(model, name, convert(child, partial(_faster, settings)))
    for module in model.modules():
        assigner = getattr(module, 'assigner', None)
        if isinstance(assigner, PluginHungarianAssigner):
            accelerate_assigner(assigner, settings)
    return settings


def _faster(settings: AccelSettings, module: nn.Module) -> Optional[nn.Module]:
    """The faster form of one module under ``settings``, or None to keep it.
    Called children first: a module's children are already converted."""
    kind = type(module)
    masks = None if settings.dropout == 'torch' else settings.dropout
    onednn = settings.linear == 'onednn'
    if kind is nn.Linear and onednn:
        return rebuild(OneDnnLinear, module, module.in_features, module.out_features,
                       module.bias is not None)
    if kind is nn.Dropout and masks:
        return rebuild(FastDropout, module, module.p, masks)
    if kind is DetrAttention and (settings.fused_layers or onednn or masks
                                  or settings.skip_padding):
        return FastDetrAttention.from_plain(module, onednn_linear if onednn else F.linear,
                                            masks, settings.fused_layers)
    if kind is DetrFFN and settings.fused_layers:
        return FastDetrFFN.from_plain(module, onednn_linear if onednn else F.linear, masks)
    if settings.skip_padding:
        if kind is DetrEncoderLayer:
            return PackedEncoderLayer.from_plain(module)
        if kind is PluginDetrTransformerEncoder:
            return PackedEncoder.from_plain(module)
    return None


def to_channels_last(backbone: nn.Module) -> bool:
    """Keep the backbone's convolution weights, and its input, in
    channels-last layout (NHWC), which oneDNN and cuDNN convolve without
    layout conversions (R50's training step on CPU: about 12% faster).
    Applied only when every module with 4-D weights is a plain ``Conv2d``
    (custom kernels, such as mmcv's deformable convolutions, may assume
    NCHW); returns whether it was.

    The layout is set now, on the built model, so that wrappers built later
    (DDP's gradient buckets) see it. A random initialisation afterwards
    (``init_weights``) fills the weights in memory order, so their values
    differ from the plain layout's (the same distribution); pretrained
    weights and checkpoints load to the same values in either layout."""
    convs = [m for m in backbone.modules()
             if any(p.dim() == 4 for p in m.parameters(recurse=False))]
    if not convs or not all(type(m) in (nn.Conv2d, FoldedConv2d) for m in convs):
        return False
    backbone.to(memory_format=torch.channels_last)
    backbone.register_forward_pre_hook(_channels_last_input)
    return True


def _channels_last_input(module: nn.Module, args: Tuple) -> Optional[Tuple]:
    """Forward pre-hook: the backbone's [B, 3, H, W] input in channels-last."""
    if args and isinstance(args[0], Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return None

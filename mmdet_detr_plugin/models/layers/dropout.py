"""Dropout with a faster mask on CPU.

PyTorch's CPU dropout draws its mask with ``bernoulli_`` from the Mersenne
Twister generator, one draw at a time: about 6-8 ns per element, which is a
fifth of DETR's transformer training step on CPU (20 M mask elements per step
at batch 2, 512 x 512). Here the uniforms come from numpy's SFC64 generator,
seeded by one draw from torch's default CPU generator (so
``torch.manual_seed`` still makes runs repeatable), written into a reused
float32 buffer (no fresh allocation per mask), and compared with p: the same
24-bit resolution as ``bernoulli_``'s float draw. The mask is kept as bool
(1 byte per element, against the 4 of ``F.dropout``'s float mask) for the
backward.

:func:`drop_mask` gives the mask alone, for layers that fold the dropout
into their own ops (the FFN applies it before its in-place ReLU and moves the
1 / (1 - p) scale into the next weight; attention scales the values).
:func:`dropout` is ``F.dropout`` with this mask on CPU, and ``F.dropout``
elsewhere and outside training.
"""
import threading
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_local = threading.local()


def drop_mask(shape: Sequence[int], p: float) -> Tensor:
    """Bool mask of ``shape`` on the CPU, each True (dropped) with
    probability p."""
    numel = 1
    for size in shape:
        numel *= size
    buffer = getattr(_local, 'buffer', None)
    if buffer is None or buffer.size < numel:
        buffer = _local.buffer = np.empty(max(numel, 1 << 20), dtype=np.float32)
    seed = int(torch.randint(0, 2**62, (1, )))
    uniform = buffer[:numel]
    np.random.Generator(np.random.SFC64(seed)).random(out=uniform, dtype=np.float32)
    return torch.from_numpy(uniform).lt(p).view(*shape)


class _CPUDropout(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor, p: float) -> Tensor:
        drop = drop_mask(x.shape, p)
        scale = 1. / (1. - p)
        ctx.save_for_backward(drop)
        ctx.scale = scale
        return x.mul(scale).masked_fill_(drop, 0.)  # no bool -> float cast

    @staticmethod
    def backward(ctx, grad: Tensor):
        drop, = ctx.saved_tensors
        return grad.mul(ctx.scale).masked_fill_(drop, 0.), None


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout(x, p, training)``, with the fast mask on CPU."""
    if not training or p == 0.:
        return x
    if x.device.type != 'cpu' or not 0. < p < 1.:
        return F.dropout(x, p, training)
    return _CPUDropout.apply(x, p)

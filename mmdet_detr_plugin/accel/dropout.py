"""Dropout with a faster mask on CPU.

PyTorch's CPU dropout draws its mask with ``bernoulli_`` from the Mersenne
Twister generator, one draw at a time: about 6-8 ns per element, which was
a fifth of DETR's transformer training step on CPU (18.6 M mask elements per
step at batch 2, 512 x 512). Here each element takes 16 random bits (a
quarter of a 64-bit word), an integer r in [0, 65536), and is kept where
``r >= round(65536 p)``: the drop rate is p to within 2^-17, far below
anything training can tell. The seed is one draw from torch's default CPU
generator, so ``torch.manual_seed`` still makes runs repeatable.

Two generators of the bits, the same rule:

- ``'numba'`` (needs numba, in the ``fast`` extra): one compiled pass on
  numba's threads, writing the float mask as it draws. Word k of a mask
  seeded s is ``mix64(s + k * 0x9E3779B97F4A7C15)``, SplitMix64's output at that state
  (Steele et al. 2014), so any part of the mask can be drawn on its own;
  the loop over words is branch-free, so LLVM vectorises it. In blocks of
  4096 elements, element j of lane l (j < 1024, l < 4) takes bits 16l to
  16l + 15 of the block's word j: the four elements of a word lie 1024
  apart and every store is contiguous. About 0.04 ns per element on 2 AMD
  cores with AVX-512 (0.9 M elements in 40 us, against 400 us below);
- ``'numpy'``: numpy's SFC64 generator (``random_raw``): each word split in
  four neighbouring elements, converted to float32 and compared in place.

``'numpy'`` is the default because loading numba and its compiler costs
about 170 MB of resident memory in a process that would not load it
otherwise (DETR R50's CPU train step at batch 2: 2450 against 2280 MiB
peak), for about 10 ms of a 180 ms transformer step (fwd + bwd) and 1 % of
a whole train step. Where numba is loaded anyway (the matcher's fused costs
or ``solver='numba'`` in dense scenes), it costs nothing more. The two
generators give different masks for the same seed.

The mask is a float32 tensor of 0 (dropped) and 1 (or the 1 / (1 - p)
scale): this build's elementwise kernels on bool tensors (``where``,
``masked_fill``, comparisons, multiplying by a bool mask) are 4-6 times
slower than a float multiply, forward and backward alike.

:func:`keep_mask` gives the mask alone, for layers that fold the dropout
into their own ops (``accel.transformer``: attention zeroes the dropped
weights and scales the values; the FFN masks its hidden before the ReLU,
both in place, and puts the scale on the next layer's product, see
:func:`masked_relu_`). :class:`FastDropout` is ``nn.Dropout`` with this mask
on CPU, and torch's dropout elsewhere.
"""
import math
from functools import lru_cache
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import compiled

_RANGE = 1 << 16  # random integers per element: 16 bits
_LANE = 1024  # words per block of the compiled generator; a block is 4 lanes


def _compile() -> Optional[Callable]:
    """The compiled mask generator ``fill(out, seed, threshold, scale)``,
    or None when numba is not installed."""
    try:
        import numba
    except ImportError:
        return None

    def jit(**kwargs):
        return compiled.jit(numba, nogil=True, **kwargs)

    gamma = np.uint64(0x9E3779B97F4A7C15)
    mul1, mul2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
    low16 = np.uint64(0xFFFF)
    lane = _LANE

    @jit(inline='always')
    def mix64(z):  # pragma: no cover (compiled)
        z = (z ^ (z >> np.uint64(30))) * mul1
        z = (z ^ (z >> np.uint64(27))) * mul2
        return z ^ (z >> np.uint64(31))

    @jit()
    def fill_block(out, start, word, seed, threshold, scale):  # pragma: no cover (compiled)
        # 4 * lane elements from out[start]; word: the block's first word index
        zero = np.float32(0.)
        lane0 = out[start:start + lane]
        lane1 = out[start + lane:start + 2 * lane]
        lane2 = out[start + 2 * lane:start + 3 * lane]
        lane3 = out[start + 3 * lane:start + 4 * lane]
        for j in range(lane):
            z = mix64(seed + (word + np.uint64(j)) * gamma)
            lane0[j] = scale if (z & low16) >= threshold else zero
            lane1[j] = scale if ((z >> np.uint64(16)) & low16) >= threshold else zero
            lane2[j] = scale if ((z >> np.uint64(32)) & low16) >= threshold else zero
            lane3[j] = scale if (z >> np.uint64(48)) >= threshold else zero

    @jit(parallel=True)
    def fill(out, seed, threshold, scale):  # pragma: no cover (compiled)
        """out [n] float32: the mask of ``seed``; kept where the 16 bits
        are >= threshold."""
        n = out.shape[0]
        blocks = n // (4 * lane)
        for b in numba.prange(blocks):
            fill_block(out, b * 4 * lane, np.uint64(b * lane), seed, threshold, scale)
        # the last, partial block: one word per element, its low 16 bits
        for i in range(blocks * 4 * lane, n):
            z = mix64(seed + np.uint64(blocks * lane + i - blocks * 4 * lane) * gamma)
            out[i] = scale if (z & low16) >= threshold else np.float32(0.)

    return fill


@lru_cache(maxsize=None)
def _compiled() -> Optional[Callable]:
    return _compile()


GENERATORS = ('numpy', 'numba')
MISSING_NUMBA = ("model.accel.dropout='numba' draws dropout masks with numba: pip install "
                 "numba (or mmdet-detr-plugin[fast]), or set model.accel.dropout='numpy'")


def check_generator(name: str) -> None:
    """A clear error for an unknown generator, or for ``'numba'`` without numba."""
    if name not in GENERATORS:
        raise ValueError(f'dropout mask generator must be one of {GENERATORS}, got {name!r}')
    if name == 'numba' and not compiled.numba_installed():
        raise ImportError(MISSING_NUMBA)


def keep_mask(shape: Sequence[int], p: float, scale: float = 1.,
              dtype: torch.dtype = torch.float32, generator: str = 'numpy') -> Tensor:
    """CPU tensor of ``shape``: 0 with probability p (dropped), else ``scale``;
    the random bits from ``generator`` (``'numpy'`` or ``'numba'``)."""
    numel = math.prod(shape)
    seed = int(torch.randint(0, 2**62, (1, )))
    if generator == 'numba':
        fill = _compiled()
        import numba
        mask = torch.empty(numel, dtype=torch.float32)
        compiled.set_threads(numba, torch.get_num_threads())
        fill(mask.numpy(), np.uint64(seed), np.uint64(round(p * _RANGE)), np.float32(scale))
        mask = mask.view(*shape)
        return mask if dtype == torch.float32 else mask.to(dtype)
    words = np.random.SFC64(seed).random_raw((numel + 3) // 4).view(np.uint16)[:numel]
    mask = torch.from_numpy(words.astype(np.float32)).view(*shape)  # [0, 65536)
    mask.ge_(round(p * _RANGE))  # 1. kept, 0. dropped
    if scale != 1.:
        mask.mul_(scale)
    return mask if dtype == torch.float32 else mask.to(dtype)


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the fast CPU mask (same rate; the masks differ from
    torch's for the same seed); torch's dropout on other devices.

    Args:
        p (float): drop rate. Defaults to 0.5.
        generator (str): ``'numpy'`` (default) or ``'numba'``.
    """

    def __init__(self, p: float = 0.5, generator: str = 'numpy') -> None:
        super().__init__(p)
        check_generator(generator)
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.:
            return x
        if x.device.type != 'cpu' or not 0. < self.p < 1.:
            return F.dropout(x, self.p, True)
        # autograd keeps only the mask for the backward (x needs no saving)
        return x * keep_mask(x.shape, self.p, 1. / (1. - self.p), x.dtype, self.generator)

    def extra_repr(self) -> str:
        return f'p={self.p}, generator={self.generator}'


class _MaskedReLU(torch.autograd.Function):
    """``relu(x * keep)`` written over x. The output is positive exactly where
    x is and the mask keeps it, so the ReLU's own backward on the output is
    the whole gradient: one pass, and nothing saved but the output, which the
    next linear layer keeps anyway (autograd's ``mul_`` would keep the mask
    too and add a pass)."""

    @staticmethod
    def forward(ctx, x: Tensor, keep: Optional[Tensor]) -> Tensor:
        if keep is not None:
            x.mul_(keep)
        out = x.relu_()
        ctx.mark_dirty(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        out, = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, out, 0), None


def masked_relu_(x: Tensor, keep: Optional[Tensor] = None) -> Tensor:
    """``relu(x * keep)`` in place on x (``keep``: a 0 / 1 mask from
    :func:`keep_mask`, or None for the ReLU alone). x must be a tensor that
    no backward needs, such as a linear layer's output."""
    if x.requires_grad and x.device.type == 'cpu' and not torch.jit.is_tracing():
        # (the tracer cannot record an in-place autograd Function)
        return _MaskedReLU.apply(x, keep)
    if keep is not None:
        x = x.mul_(keep)
    return x.relu_()

"""Linear layers whose float32 CPU products run on oneDNN.

PyTorch multiplies float32 matrices on x86 CPUs with MKL's ``sgemm``. On
AMD processors MKL runs its AVX2 kernels even where the CPU has AVX-512,
while oneDNN (also inside PyTorch, behind ``mkldnn`` ops) picks its kernels
by instruction set. For DETR's transformer shapes ([448, 256] x [256, 2048]
and the like), on a 2-core AMD EPYC with AVX-512, oneDNN's float32 matmul
ran at 2.2x MKL's rate (470 against 210 GFLOPS), forward and in both
products of the backward; where MKL already uses AVX-512 (Intel) the two
are about equal, and this path is extra work for nothing. So it is chosen
by measuring the processor (``accel.cpu``), not assumed. The arithmetic
stays float32: outputs differ from ``F.linear`` by rounding only.

:func:`onednn_linear` is ``F.linear`` with that path for float32 CPU tensors
outside autocast, from ``MIN_MACS`` multiply-adds per product (below it the
call's fixed cost outweighs the gain), and ``F.linear`` everywhere else:
other devices and dtypes, CPU autocast, ``torch.backends.mkldnn`` switched
off, TorchScript tracing (FLOP counters and exporters see the standard op)
and ``torch.compile`` (which picks its own kernels). The op is private to
PyTorch (``torch.ops.mkldnn._linear_pointwise``, which inductor uses): a
build without it, or where it does not answer as expected, has no oneDNN
path (:func:`onednn_available`).
"""
from functools import lru_cache
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LinearFn = Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]

# a oneDNN call costs about 10 us more than an MKL one: below this many
# multiply-adds (x.numel() * out) MKL is as fast or faster (on 2 AMD cores:
# 1.6 M (200 x 64 x 64): 12 against 17 us; 4.2 M: equal; 13 M: 85 against 49 us)
MIN_MACS = 4 * 2**20


@lru_cache(maxsize=None)
def _op() -> Optional[Callable]:
    """oneDNN's linear op of this PyTorch build, or None when it is missing
    or does not compute x @ w.T + b on a small probe."""
    if not torch.backends.mkldnn.is_available():
        return None
    op = getattr(torch.ops.mkldnn, '_linear_pointwise', None)
    if op is None:
        return None
    x, w, b = torch.tensor([[1., 2.]]), torch.tensor([[3., 4.], [5., 6.]]), torch.tensor([1., 0.])
    try:
        ok = torch.equal(op(x, w, b, 'none', [], ''), torch.tensor([[12., 17.]]))
    except (RuntimeError, TypeError):
        return None
    return op if ok else None


def onednn_available() -> bool:
    """Whether this PyTorch build has a working oneDNN linear op."""
    return _op() is not None


def onednn_matmul(a: Tensor, b_t: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """a [..., k] @ b_t.T ([n, k], any strides) + bias [n], on oneDNN."""
    return _op()(a, b_t, bias, 'none', [], '')


class _OneDnnLinear(torch.autograd.Function):
    """x [..., in] @ weight.T ([out, in]) + bias [out]; every product on oneDNN.
    The backward's products take transposed views; oneDNN copies a transposed
    left operand itself, so the weight gradient puts the smaller of its two
    operands there."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return onednn_matmul(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = onednn_matmul(grad, weight.t())  # [..., out] @ [out, in]
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            grad_2d = grad.reshape(-1, grad.shape[-1])  # [P, out]
            if ctx.needs_input_grad[1]:
                x_2d = x.reshape(-1, x.shape[-1])  # [P, in]
                if weight.shape[0] <= weight.shape[1]:
                    grad_w = onednn_matmul(grad_2d.t(), x_2d.t())  # [out, P] @ [P, in]
                else:
                    grad_w = onednn_matmul(x_2d.t(), grad_2d.t()).t()  # ([in, P] @ [P, out]).T
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_b = grad_2d.sum(0)
        return grad_x, grad_w, grad_b


def _applies(x: Tensor, weight: Tensor, bias: Optional[Tensor], min_macs: int) -> bool:
    return (x.device.type == 'cpu' and x.dtype == torch.float32
            and weight.dtype == torch.float32 and x.dim() >= 2
            and (bias is None or bias.dtype == torch.float32)
            and x.numel() * weight.shape[0] >= min_macs
            and not torch.jit.is_tracing() and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling()
            and torch.backends.mkldnn.enabled and not torch.is_autocast_enabled('cpu')
            and onednn_available())


def onednn_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                  min_macs: int = MIN_MACS) -> Tensor:
    """``F.linear(x, weight, bias)``: x [..., in], weight [out, in], bias
    [out] -> [..., out]; float32 CPU products of at least ``min_macs``
    multiply-adds on oneDNN (module docstring)."""
    if not _applies(x, weight, bias, min_macs):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        return _OneDnnLinear.apply(x, weight, bias)
    return onednn_matmul(x, weight, bias)


class OneDnnLinear(nn.Linear):
    """``nn.Linear`` whose forward is :func:`onednn_linear`: the same
    parameters, state-dict keys and initialisation."""

    def forward(self, x: Tensor) -> Tensor:
        return onednn_linear(x, self.weight, self.bias)

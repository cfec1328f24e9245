"""FLOP counting of fused attention for mmengine's ``FlopAnalyzer``.

mmengine counts ``aten::matmul``/``bmm`` (one multiply-add = one flop) but has
no handle for ``aten::scaled_dot_product_attention``, which the plugin's
attention calls; without one, the transformer's attention would be left out
of ``get_flops.py``'s total (mmdet's DETR, through ``nn.MultiheadAttention``'s
matmuls, would be counted in full).
"""
from typing import Any, List

from mmengine.analysis.jit_handles import get_shape


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv]: Lq * Lk * (D + Dv) per
    batch-head (the two matmuls; softmax and masking are not counted, as
    mmengine counts no elementwise op)."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for size in q[:-2]:
        batch *= size
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def register_sdpa_flops() -> None:
    """Add the handles to mmengine's default flop and activation handles
    (idempotent)."""
    from mmengine.analysis import complexity_analysis
    from mmengine.analysis.jit_handles import generic_activation_jit
    name = 'aten::scaled_dot_product_attention'
    complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS.setdefault(name, sdpa_flop_jit)
    complexity_analysis._DEFAULT_SUPPORTED_ACT_OPS.setdefault(name, generic_activation_jit())

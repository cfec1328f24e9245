"""What the processor is, and whether oneDNN's linear layers pay on it.

Whether oneDNN's float32 products beat MKL's (``F.linear``) depends on the
processor, not on the code: MKL runs AVX2 kernels on AMD CPUs with AVX-512,
where oneDNN ran DETR's products 2.2x faster (2-core AMD EPYC), while on an
Intel Xeon with AVX-512 the two were about equal. Rather than guess from the
vendor, ``linear='auto'`` measures once per process: DETR's FFN product
([512, 256] x [256, 2048], 0.27 GFLOP) a few times with each, in
alternation, and takes oneDNN when its best time beats MKL's by at least
``ONEDNN_MIN_SPEEDUP``. The two have the same values up to rounding, so
the choice changes speed, not results.
"""
import platform
import time
from functools import lru_cache
from typing import Dict

import torch
import torch.nn.functional as F

# oneDNN must be at least this much faster to be chosen: on processors where
# the two are equal, the measurement's noise should not flip the choice
ONEDNN_MIN_SPEEDUP = 1.25


@lru_cache(maxsize=None)
def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@lru_cache(maxsize=None)
def onednn_linear_speedup(repeats: int = 5) -> float:
    """MKL's time / oneDNN's for DETR's FFN product on this CPU, best of
    ``repeats`` each, in alternation (0 where this PyTorch has no oneDNN
    linear op). Measured once per process (about 20 ms)."""
    from .linear import onednn_available, onednn_matmul
    if not onednn_available():
        return 0.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 256, generator=gen)
    w = torch.randn(2048, 256, generator=gen)
    b = torch.randn(2048, generator=gen)
    with torch.no_grad():
        for _ in range(2):  # warm-up: packing, thread pool start
            F.linear(x, w, b)
            onednn_matmul(x, w, b)
        mkl = onednn = float('inf')
        for _ in range(repeats):
            mkl = min(mkl, _timed(lambda: F.linear(x, w, b)))
            onednn = min(onednn, _timed(lambda: onednn_matmul(x, w, b)))
    return mkl / onednn


def choose_linear(linear: str) -> str:
    """``'auto'`` -> ``'onednn'`` or ``'torch'`` by :func:`onednn_linear_speedup`;
    other values as they are (``'onednn'`` needs the op: a clear error)."""
    if linear == 'onednn':
        from .linear import onednn_available
        if not onednn_available():
            raise RuntimeError("model.accel.linear='onednn', but this PyTorch build has no "
                               "working oneDNN linear op: set model.accel.linear='auto'")
        return linear
    if linear != 'auto':
        return linear
    return 'onednn' if onednn_linear_speedup() >= ONEDNN_MIN_SPEEDUP else 'torch'


def describe() -> Dict[str, object]:
    """The processor and the linear-layer measurement, for benchmark records."""
    return dict(cpu_model=cpu_model(), machine=platform.machine(),
                torch_threads=torch.get_num_threads(),
                onednn_linear_speedup=round(onednn_linear_speedup(), 3))

"""numba's compiler for the plugin's compiled CPU kernels (the matcher's
fused costs and solver, the dropout-mask generator), all optional: numba is
in the ``fast`` extra."""
import importlib.util
from typing import Callable


def numba_installed() -> bool:
    """Whether numba can be imported (checked without importing it)."""
    return importlib.util.find_spec('numba') is not None


def jit(numba, **kwargs) -> Callable[[Callable], Callable]:
    """``numba.njit(**kwargs)`` that keeps the machine code in numba's disk
    cache, so later processes load it instead of compiling; where no cache
    folder is writable, it compiles in every process instead."""
    def wrap(fn: Callable) -> Callable:
        try:
            return numba.njit(cache=True, **kwargs)(fn)
        except RuntimeError:  # no writable cache folder
            return numba.njit(**kwargs)(fn)
    return wrap


def set_threads(numba, wanted: int) -> int:
    """Run numba's next parallel calls on ``wanted`` threads, clipped to
    [1, NUMBA_NUM_THREADS] (numba's pool cannot grow past it); returns the
    count set."""
    threads = max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    return threads

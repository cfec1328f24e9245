"""Solvers of the assignment problems, behind one batch interface.

The assigner writes the cost matrices of a batch one after another into one
flat host array (:func:`host_buffer`) and hands them to a solver::

    rows, cols = solver.solve_batch(flat, shapes, num_threads)

which returns the ``min(R, C)`` matched pairs of each [R, C] problem in turn
(rows ascending within a problem, as ``scipy.optimize.linear_sum_assignment``),
or raises ``ValueError`` (:data:`NONFINITE_COSTS`) when a cost is NaN or inf.

* :class:`ScipySolver` (``'scipy'``, the default): scipy's solver, the one
  mmdet's ``HungarianAssigner`` uses; a large batch is cut into runs solved on
  a pool of host threads (scipy releases the GIL).
* ``'numba'``: the plugin's own compiled solver
  (``mmdet_detr_plugin.accel.lap_solver``), 5-6x faster than scipy on DETR's
  dense costs; numba is optional.

All are exact: they give the same matching whenever the optimum is unique,
and an optimal one otherwise.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

NONFINITE_COSTS = ('matching costs contain NaN or inf: the predictions of this step are '
                   'not finite (the model has diverged; lower the learning rate or check '
                   'the input data)')

Pairs = Tuple[np.ndarray, np.ndarray]


def check_finite(costs: np.ndarray) -> None:
    if not np.isfinite(costs).all():
        raise ValueError(NONFINITE_COSTS)


def split_problems(flat: np.ndarray, shapes: Sequence[Tuple[int, int]]) -> List[np.ndarray]:
    """The [R_p, C_p] views of the problems stored one after another in ``flat``."""
    problems, offset = [], 0
    for rows, cols in shapes:
        problems.append(flat[offset:offset + rows * cols].reshape(rows, cols))
        offset += rows * cols
    return problems


def concat_pairs(pairs: Sequence[Pairs]) -> Pairs:
    """Per-problem (rows, cols) -> all rows, all cols (int64)."""
    if not pairs:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    return (np.concatenate([r for r, _ in pairs]).astype(np.int64, copy=False),
            np.concatenate([c for _, c in pairs]).astype(np.int64, copy=False))


class ScipySolver:
    """``scipy.optimize.linear_sum_assignment`` on each problem.

    With ``num_threads > 1`` and at least ``parallel_min_elements`` costs in
    the batch, the problems are cut into ``num_threads`` contiguous runs of
    about equal size; the calling thread solves the first while a pool solves
    the rest. Each problem is solved exactly as on its own, so the results
    do not depend on the number of threads.

    Args:
        parallel_min_elements (int): below this many costs in a batch the
            problems are solved on the calling thread (a pool costs more than
            it saves). Defaults to 2^17.
    """

    name = 'scipy'

    def __init__(self, parallel_min_elements: int = 1 << 17) -> None:
        self.parallel_min_elements = parallel_min_elements
        self._pools: Dict[Tuple[int, int], ThreadPoolExecutor] = {}

    def solve(self, cost: np.ndarray) -> Pairs:
        """One [R, C] problem -> ``(rows, cols)``, each of length min(R, C)."""
        if cost.size == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        check_finite(cost)
        return linear_sum_assignment(cost)

    def solve_batch(self, flat: np.ndarray, shapes: Sequence[Tuple[int, int]],
                    num_threads: int = 1) -> Pairs:
        """The problems stored one after another in ``flat`` (1-D) -> all
        pairs, problem after problem."""
        problems = split_problems(flat, shapes)
        total = sum(p.size for p in problems)
        check_finite(flat[:total])
        num_threads = min(num_threads, len(problems))
        if num_threads <= 1 or total < self.parallel_min_elements:
            return concat_pairs(self._solve_run(problems))
        # contiguous runs balanced by size (the solver's time grows with R * C)
        sizes = np.cumsum([p.size for p in problems])
        cuts = np.searchsorted(sizes, sizes[-1] * np.arange(1, num_threads) / num_threads)
        bounds = [0, *cuts.tolist(), len(problems)]
        runs = [problems[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        pool = self._pool(num_threads - 1)
        futures = [pool.submit(self._solve_run, run) for run in runs[1:]]
        solved = self._solve_run(runs[0])
        for future in futures:
            solved.extend(future.result())
        return concat_pairs(solved)

    def _solve_run(self, problems: Sequence[np.ndarray]) -> List[Pairs]:
        return [linear_sum_assignment(p) if p.size else (np.empty(0, np.int64),) * 2
                for p in problems]

    def _pool(self, num_threads: int) -> ThreadPoolExecutor:
        """One pool per process (a forked child gets its own) and size."""
        key = (os.getpid(), num_threads)
        if key not in self._pools:
            self._pools[key] = ThreadPoolExecutor(num_threads,
                                                  thread_name_prefix='detr-matching')
        return self._pools[key]

    def __getstate__(self) -> dict:  # pools are not copied (deepcopy, pickling)
        return dict(self.__dict__, _pools={})


def _compiled_solver():
    from ....accel.lap_solver import CompiledSolver
    return CompiledSolver()


# solver name -> factory; the compiled one is imported only when asked for
SOLVERS: Dict[str, Callable[[], object]] = {'scipy': ScipySolver, 'numba': _compiled_solver}


def get_solver(name: str):
    """A new solver of the given name; a clear error for a bad name or a
    missing optional package."""
    if name not in SOLVERS:
        raise ValueError(f'PluginHungarianAssigner: solver must be one of {sorted(SOLVERS)}, '
                         f'got {name!r}')
    return SOLVERS[name]()


def solve_assignment(cost: np.ndarray, solver: str = 'scipy') -> Pairs:
    """Minimum-cost one-to-one matching of an [R, C] cost matrix.

    Returns ``(rows, cols)``, each of length ``min(R, C)``, rows ascending.
    Raises ``ValueError`` naming the problem when the costs are not finite
    (usually NaN predictions from a diverged model).

    Example:
        >>> rows, cols = solve_assignment(np.array([[4., 1., 3.], [2., 0., 5.]]))
        >>> rows.tolist(), cols.tolist()
        ([0, 1], [1, 0])
    """
    return get_solver(solver).solve(np.asarray(cost))


# per thread: pinned or not -> flat float32 host tensor, grown on demand
_HOST_BUFFERS = threading.local()


def host_buffer(numel: int, pin: bool = False) -> Tensor:
    """A flat float32 CPU tensor of ``numel`` elements, reused across calls.

    The cost matrices of a dense batch are tens of MiB (6 x 500 x 900 x 4
    images: 43 MiB). A fresh CPU tensor of that size is new memory from the
    OS at every step, and first touching its pages cost 20-40 ms per step
    on a 2-core CPU, more than computing the costs (device memory needs no
    such care: torch's caching allocator already reuses it). The buffer is
    kept per thread and grows by a quarter more than asked, so that a batch
    with a few more boxes does not allocate again. ``pin``: page-locked, for
    the copy from a CUDA device.
    """
    buffers = _HOST_BUFFERS.__dict__.setdefault('buffers', {})
    buf = buffers.get(pin)
    if buf is None or buf.numel() < numel:
        buf = buffers[pin] = torch.empty(numel + numel // 4, dtype=torch.float32,
                                         pin_memory=pin)
    return buf[:numel]

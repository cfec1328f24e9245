"""An exact solver of the rectangular linear assignment problem, compiled by numba.

``solve(cost)`` takes an [R, C] cost matrix and returns ``(rows, cols)`` as
``scipy.optimize.linear_sum_assignment`` does: ``min(R, C)`` pairs of least
total cost, rows ascending. ``solve_blocks(flat, shapes, num_threads)``
solves many problems stored one after another in one buffer, in one compiled
call on numba's threads (no Python between problems). :class:`CompiledSolver`
puts them behind the assigner's solver interface
(``models/task_modules/assigners/solvers.py``):
``PluginHungarianAssigner(solver='numba')``, or ``model.accel.solver``.

Algorithm, on the orientation with R <= C (a wider matrix is solved as is, a
taller one transposed):

1. Greedy start. Each row in turn takes its cheapest column if that column is
   still free (the first free one among equal minima); its dual is u_i = its
   row minimum, and every column dual is v_j = 0. Every assigned row then
   sits on a column of least reduced cost ``c_ij - u_i - v_j = 0``, all
   reduced costs of assigned rows are >= 0, v <= 0, and free columns have
   v = 0: the dual conditions of the rectangular problem (Jonker & Volgenant
   1987; Crouse 2016) hold for the partial matching.
2. Each row left free is added by a shortest augmenting path: Dijkstra over
   columns on the reduced costs, from the row to the nearest free column,
   then the duals of the rows and columns it reached are moved by their
   distances and the path is flipped. This keeps the conditions above, so
   the final matching is of least cost (as scipy's solver, which starts from
   zero duals and has every row take this step).

In DETR's dense scenes the greedy start assigns most rows (about 290 of 500
boxes against 900 queries), and the rest take short paths. The inner loops
are written so that LLVM can vectorise them: the relaxation of a row's edges is
branch-free (scanned columns are excluded by adding +inf), and the minimum of
the distances is taken over eight lanes. All arithmetic is float64 (float32
costs are widened exactly), in the order scipy's solver uses; no fast-math
flags, so the comparisons are IEEE's.

Results equal scipy's whenever the least-cost matching is unique; with ties
another matching of the same cost may be returned, as with any other solver.
Costs that are NaN or inf raise ``ValueError`` (checked as the greedy start
reads them, at no extra pass).

Timed in alternation on DETR-like dense problems (medians of 9): alone on
one thread, 48 problems of 100 x 300 take 2.4 ms on an AMD EPYC (scipy 12.6,
lapx's Jonker-Volgenant 3.0) and 3.8 ms on an Intel Xeon (scipy 15.4, lapx
3.9); 24 problems of 500 x 900 take 45.7 ms on the EPYC (scipy 259, lapx
78.8) and 34.2 ms on the Xeon (scipy 153, lapx 26.7). In the assigner, on
2 threads (all problems in one parallel call here, lapx on the thread
pool), the Xeon's batch of 24 took 127 ms against lapx's 168 and scipy's 386.
"""
from functools import lru_cache
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from ..models.task_modules.assigners.solvers import NONFINITE_COSTS
from . import compiled


def _compile():
    """The numba kernel, compiled on first use and cached on disk; None when
    numba is not installed."""
    try:
        import numba
    except ImportError:
        return None

    def jit(**kwargs):
        return compiled.jit(numba, **kwargs)

    @jit(inline='always')
    def argmin(x, n):  # pragma: no cover (compiled)
        # first index of the minimum of x[:n], and the minimum: eight lanes
        # (a vector register), then the chunk of eight that holds it;
        # index -1 when the minimum is not finite (NaN or inf costs)
        m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = np.inf
        n8 = n - n % 8
        for j in range(0, n8, 8):
            m0 = min(m0, x[j])
            m1 = min(m1, x[j + 1])
            m2 = min(m2, x[j + 2])
            m3 = min(m3, x[j + 3])
            m4 = min(m4, x[j + 4])
            m5 = min(m5, x[j + 5])
            m6 = min(m6, x[j + 6])
            m7 = min(m7, x[j + 7])
        m = min(min(min(m0, m1), min(m2, m3)), min(min(m4, m5), min(m6, m7)))
        for j in range(n8, n):
            m = min(m, x[j])
        j = 0
        while j < n8:
            if ((x[j] == m) | (x[j + 1] == m) | (x[j + 2] == m) | (x[j + 3] == m)
                    | (x[j + 4] == m) | (x[j + 5] == m) | (x[j + 6] == m) | (x[j + 7] == m)):
                break
            j += 8
        while j < n and x[j] != m:
            j += 1
        if j == n or not np.isfinite(m):
            return -1, m
        return j, m

    @jit(inline='always')
    def relax(cost_i, u_i, min_val, v, blocked, dist, path, i, n):  # pragma: no cover
        # dist[j] = min(dist[j], min_val + c_ij - u_i - v_j) over unscanned
        # columns (blocked[j] = +inf for scanned ones), branch-free
        for j in range(n):
            r = min_val + np.float64(cost_i[j]) - u_i - v[j] + blocked[j]
            d = dist[j]
            take = r < d
            dist[j] = r if take else d
            path[j] = i if take else path[j]

    @jit(nogil=True)
    def solve_wide(cost, col4row):  # pragma: no cover (compiled)
        # cost [R, C], R <= C, C-contiguous float32 or float64; writes
        # col4row [R]; returns 0, or 1 when a cost is not finite
        num_rows, num_cols = cost.shape
        col4row[:] = -1
        row4col = np.full(num_cols, -1, np.int64)
        u = np.empty(num_rows)
        v = np.zeros(num_cols)
        dist = np.empty(num_cols)
        final = np.empty(num_cols)  # distance of a column when it was scanned
        blocked = np.empty(num_cols)
        path = np.empty(num_cols, np.int64)
        rows_seen = np.empty(num_rows, np.int64)
        cols_seen = np.empty(num_cols, np.int64)
        free = np.empty(num_rows, np.int64)
        # 1. greedy start; every cost is read here once, and x * 0 is 0 for
        # every finite x and NaN for NaN and inf: the finiteness check
        num_free = 0
        for i in range(num_rows):
            cost_i = cost[i]
            nonfinite = 0.0
            for j in range(num_cols):
                x = np.float64(cost_i[j])
                dist[j] = x
                nonfinite += x * 0.0
            if nonfinite != 0.0:
                return 1
            j, m = argmin(dist, num_cols)
            while j < num_cols and (dist[j] != m or row4col[j] != -1):
                j += 1
            u[i] = m
            if j < num_cols:
                row4col[j] = i
                col4row[i] = j
            else:
                free[num_free] = i
                num_free += 1
        # 2. shortest augmenting path from each free row
        for f in range(num_free):
            cur = free[f]
            for j in range(num_cols):
                dist[j] = np.inf
                blocked[j] = 0.0
            num_rows_seen = num_cols_seen = 0
            min_val = 0.0
            u[cur] = 0.0
            i = cur
            sink = -1
            while sink == -1:
                rows_seen[num_rows_seen] = i
                num_rows_seen += 1
                relax(cost[i], u[i], min_val, v, blocked, dist, path, i, num_cols)
                j, min_val = argmin(dist, num_cols)
                if j < 0:
                    return 1
                final[j] = min_val
                dist[j] = np.inf
                blocked[j] = np.inf
                cols_seen[num_cols_seen] = j
                num_cols_seen += 1
                if row4col[j] == -1:
                    sink = j
                else:
                    i = row4col[j]
            # duals of the rows and columns reached
            u[cur] += min_val
            for k in range(1, num_rows_seen):
                i = rows_seen[k]
                u[i] += min_val - final[col4row[i]]
            for k in range(num_cols_seen):
                j = cols_seen[k]
                v[j] -= min_val - final[j]
            # flip the path
            j = sink
            while True:
                i = path[j]
                row4col[j] = i
                j_prev = col4row[i]
                col4row[i] = j
                if i == cur:
                    break
                j = j_prev
        return 0

    @jit(nogil=True)
    def solve_into(cost, out_rows, out_cols):  # pragma: no cover (compiled)
        # cost [R, C] C-contiguous, any R, C >= 1; writes min(R, C) pairs,
        # rows ascending, into out_rows/out_cols; returns solve_wide's status
        num_rows, num_cols = cost.shape
        if num_rows <= num_cols:
            status = solve_wide(cost, out_cols)
            for i in range(num_rows):
                out_rows[i] = i
            return status
        row4col = np.empty(num_cols, np.int64)
        status = solve_wide(np.ascontiguousarray(cost.T), row4col)
        order = np.argsort(row4col)
        for k in range(num_cols):
            out_rows[k] = row4col[order[k]]
            out_cols[k] = order[k]
        return status

    @jit(nogil=True, parallel=True)
    def solve_blocks(flat, starts, shapes, out_starts, out_rows, out_cols, status):
        # problem p: flat[starts[p]:] viewed as shapes[p] = (R, C), its pairs
        # at out_*[out_starts[p]:], its status in status[p]
        for p in numba.prange(len(starts)):  # pragma: no cover (compiled)
            num_rows, num_cols = shapes[p, 0], shapes[p, 1]
            if num_rows == 0 or num_cols == 0:
                status[p] = 0
                continue
            block = flat[starts[p]:starts[p] + num_rows * num_cols].reshape(num_rows, num_cols)
            k = min(num_rows, num_cols)
            at = out_starts[p]
            status[p] = solve_into(block, out_rows[at:at + k], out_cols[at:at + k])

    return solve_into, solve_blocks


@lru_cache(maxsize=None)
def kernels() -> Optional[Tuple[Callable, Callable]]:
    """The compiled ``(solve_into, solve_blocks)``, or None without numba."""
    return _compile()


def available() -> bool:
    """Whether numba is installed (without compiling the kernels)."""
    return compiled.numba_installed()


MISSING_NUMBA = ("the compiled assignment solver (model.accel.solver='numba', or "
                 "PluginHungarianAssigner(solver='numba')) needs the numba package: pip install "
                 "numba (or mmdet-detr-plugin[fast]), or use solver='scipy'")


def _kernels() -> Tuple[Callable, Callable]:
    compiled = kernels()
    if compiled is None:
        raise ImportError(MISSING_NUMBA)
    return compiled


def solve(cost: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Least-cost one-to-one matching of an [R, C] cost matrix.

    Returns ``(rows, cols)``, int64, each of length ``min(R, C)``, rows
    ascending, as ``scipy.optimize.linear_sum_assignment``. float32 costs
    are read as they are (widened to float64 in the kernel), other dtypes
    are converted to float64. Raises ``ValueError`` when a cost is NaN or
    inf.
    """
    solve_into, _ = _kernels()
    cost = np.asarray(cost)
    if cost.dtype != np.float32:
        cost = cost.astype(np.float64, copy=False)
    k = min(cost.shape)
    rows, cols = np.empty(k, np.int64), np.empty(k, np.int64)
    if k and solve_into(np.ascontiguousarray(cost), rows, cols):
        raise ValueError(NONFINITE_COSTS)
    return rows, cols


def solve_blocks(flat: np.ndarray, shapes: Sequence[Tuple[int, int]],
                 num_threads: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Solve the problems stored one after another in ``flat``, in parallel.

    Args:
        flat (np.ndarray): 1-D float32 or float64 costs; problem p is the next
            ``R_p * C_p`` elements, an [R_p, C_p] matrix in C order.
        shapes (sequence of (R_p, C_p)): the problems' shapes.
        num_threads (int): threads to solve on (numba's pool; each problem
            is solved on one thread, as ``solve`` would: the results do not
            depend on it).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``rows`` and ``cols``, int64, the
        ``min(R_p, C_p)`` pairs of each problem in turn, as ``solve`` gives
        them. Raises ``ValueError`` when a cost is NaN or inf.
    """
    import numba
    _, blocks = _kernels()
    shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    pairs = shapes.min(1)
    out_starts = np.concatenate([[0], np.cumsum(pairs)[:-1]]).astype(np.int64)
    rows, cols = np.empty(pairs.sum(), np.int64), np.empty(pairs.sum(), np.int64)
    status = np.zeros(len(shapes), np.int64)
    if len(shapes):
        compiled.set_threads(numba, min(num_threads, len(shapes)))
        # one problem at a time per thread: their times differ widely
        with numba.parallel_chunksize(1):
            blocks(flat, starts, shapes, out_starts, rows, cols, status)
    if status.any():
        raise ValueError(NONFINITE_COSTS)
    return rows, cols


class CompiledSolver:
    """The assigner's solver interface on this module's compiled solver; all
    problems of a batch in one parallel call. Raises ``ImportError`` naming
    the fix when numba is not installed."""

    name = 'numba'

    def __init__(self) -> None:
        if not available():  # checked without compiling the kernels
            raise ImportError(MISSING_NUMBA)

    def solve(self, cost: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        return solve(cost)

    def solve_batch(self, flat: np.ndarray, shapes: Sequence[Tuple[int, int]],
                    num_threads: int = 1) -> Tuple[np.ndarray, np.ndarray]:
        return solve_blocks(flat, shapes, num_threads)

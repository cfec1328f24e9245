"""The matcher's kernels: fused costs and the compiled solver on a
``PluginHungarianAssigner``, as ``model.accel`` asks (``settings.py``)."""
from typing import Sequence, Tuple

import numpy as np

from ..models.task_modules.assigners.solvers import ScipySolver
from .compiled import numba_installed
from .settings import COMPILED_MIN_ELEMENTS, FUSED_MIN_ELEMENTS, AccelSettings


class SizeSwitchedSolver:
    """scipy's solver for batches below ``min_elements`` costs, the compiled
    one from there: DETR on COCO never loads numba, dense scenes get the
    faster solver."""

    name = 'auto'

    def __init__(self, min_elements: int = COMPILED_MIN_ELEMENTS) -> None:
        from .lap_solver import CompiledSolver
        self.small, self.large = ScipySolver(), CompiledSolver()
        self.min_elements = min_elements

    def solve(self, cost: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        return (self.large if cost.size >= self.min_elements else self.small).solve(cost)

    def solve_batch(self, flat: np.ndarray, shapes: Sequence[Tuple[int, int]],
                    num_threads: int = 1) -> Tuple[np.ndarray, np.ndarray]:
        total = sum(rows * cols for rows, cols in shapes)
        solver = self.large if total >= self.min_elements else self.small
        return solver.solve_batch(flat, shapes, num_threads)


def accelerate_assigner(assigner, settings: AccelSettings) -> None:
    """Give a ``PluginHungarianAssigner`` the cost kernel and solver of
    ``settings``; a solver configured on the assigner itself (not scipy's)
    is kept, unless ``settings`` asks for scipy's: then one error names both
    keys."""
    from .fused_costs import FusedDetrCost, fused_weights
    weights = fused_weights(assigner.match_costs)
    if weights is not None and (settings.matching_costs == 'fused' or (
            settings.matching_costs == 'auto' and numba_installed())):
        min_elements = FUSED_MIN_ELEMENTS if settings.matching_costs == 'auto' else 0
        assigner.cost_kernel = FusedDetrCost(weights, min_elements)
    if assigner.solver.name != 'scipy':
        if settings.solver == 'scipy':
            raise ValueError(f"model.accel.solver='scipy' (or model.accel='reference') but "
                             f"the assigner's solver is {assigner.solver.name!r}: set "
                             "model.accel.solver instead of the assigner's solver")
        return
    if settings.solver == 'numba':
        from .lap_solver import CompiledSolver
        assigner.solver = CompiledSolver()
    elif settings.solver == 'auto' and numba_installed():
        assigner.solver = SizeSwitchedSolver()

from .hungarian_assigner import PluginHungarianAssigner
from .match_costs import (PluginBBoxL1Cost, PluginClassificationCost, PluginFocalLossCost,
                          PluginIoUCost)
from .solvers import ScipySolver, get_solver, solve_assignment

__all__ = [
    'PluginHungarianAssigner', 'PluginClassificationCost', 'PluginBBoxL1Cost', 'PluginIoUCost',
    'PluginFocalLossCost', 'ScipySolver', 'get_solver', 'solve_assignment'
]

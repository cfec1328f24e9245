from .hungarian_assigner import PluginHungarianAssigner, solve_assignment, solve_many
from .match_costs import (PluginBBoxL1Cost, PluginClassificationCost, PluginFocalLossCost,
                          PluginIoUCost)

__all__ = [
    'PluginHungarianAssigner', 'solve_assignment', 'solve_many', 'PluginClassificationCost',
    'PluginBBoxL1Cost', 'PluginIoUCost', 'PluginFocalLossCost'
]

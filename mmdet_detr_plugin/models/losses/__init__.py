from .set_criterion import PluginSetCriterion

__all__ = ['PluginSetCriterion']

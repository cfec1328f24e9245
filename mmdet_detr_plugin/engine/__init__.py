from .amp_optim_wrapper import PluginAmpOptimWrapper
from .hooks import PluginNonFiniteLossHook

__all__ = ['PluginAmpOptimWrapper', 'PluginNonFiniteLossHook']

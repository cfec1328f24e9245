from .amp_optim_wrapper import PluginAmpOptimWrapper

__all__ = ['PluginAmpOptimWrapper']

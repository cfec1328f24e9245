from .input_projection import PluginInputProjection

__all__ = ['PluginInputProjection']

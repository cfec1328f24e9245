from .detr import PluginDETR

__all__ = ['PluginDETR']

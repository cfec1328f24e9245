from .detr_head import PluginDETRHead

__all__ = ['PluginDETRHead']

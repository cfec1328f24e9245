from .detr_head import PluginDETRHead
from .up_detr_head import PluginUPDETRHead

__all__ = ['PluginDETRHead', 'PluginUPDETRHead']

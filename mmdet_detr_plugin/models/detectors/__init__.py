from .detr import PluginDETR
from .up_detr import PluginUPDETR

__all__ = ['PluginDETR', 'PluginUPDETR']

from .detr import PluginDETR
from .detr_panoptic import PluginDETRPanoptic
from .up_detr import PluginUPDETR

__all__ = ['PluginDETR', 'PluginDETRPanoptic', 'PluginUPDETR']

from .detr_head import PluginDETRHead
from .detr_panoptic_head import PluginDETRPanopticHead
from .up_detr_head import PluginUPDETRHead

__all__ = ['PluginDETRHead', 'PluginDETRPanopticHead', 'PluginUPDETRHead']

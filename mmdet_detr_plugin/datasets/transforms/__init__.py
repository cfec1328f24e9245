from .panoptic import PluginLoadPanopticAnnotations, masks_to_boxes
from .query_patches import PluginPackQueryPatchInputs, PluginRandomQueryPatches

__all__ = ['PluginRandomQueryPatches', 'PluginPackQueryPatchInputs',
           'PluginLoadPanopticAnnotations', 'masks_to_boxes']

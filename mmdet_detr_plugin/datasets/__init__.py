"""Data: the toy shapes generator (numpy/PIL), the unlabeled image folder
data set and UP-DETR's query-patch transforms."""
from .image_folder import IMAGE_EXTENSIONS, PluginImageFolderDataset
from .toy_shapes import MIN_SHAPE_SIZE, TOY_CLASSES, make_toy_coco, render_toy_image, shape_mask
from .transforms import PluginPackQueryPatchInputs, PluginRandomQueryPatches

__all__ = ['TOY_CLASSES', 'MIN_SHAPE_SIZE', 'make_toy_coco', 'render_toy_image', 'shape_mask',
           'PluginImageFolderDataset', 'IMAGE_EXTENSIONS', 'PluginRandomQueryPatches',
           'PluginPackQueryPatchInputs']

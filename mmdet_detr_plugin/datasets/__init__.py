"""Data: the toy shapes generators (detection in COCO and VOC layouts, panoptic;
numpy/PIL), the unlabeled image folder data set, the checked COCO panoptic data
set, UP-DETR's query-patch transforms and DETR's panoptic target loader."""
from .coco_panoptic import PluginCocoPanopticDataset
from .image_folder import IMAGE_EXTENSIONS, PluginImageFolderDataset
from .toy_panoptic import (TOY_STUFF_CLASSES, TOY_THING_CLASSES, make_toy_panoptic,
                           render_toy_panoptic, segment_ids_to_rgb)
from .toy_shapes import MIN_SHAPE_SIZE, TOY_CLASSES, make_toy_coco, render_toy_image, shape_mask
from .toy_voc import make_toy_voc
from .transforms import (PluginLoadPanopticAnnotations, PluginPackQueryPatchInputs,
                         PluginRandomQueryPatches)

__all__ = ['TOY_CLASSES', 'MIN_SHAPE_SIZE', 'make_toy_coco', 'make_toy_voc', 'render_toy_image',
           'shape_mask', 'TOY_THING_CLASSES', 'TOY_STUFF_CLASSES', 'make_toy_panoptic',
           'render_toy_panoptic', 'segment_ids_to_rgb', 'PluginImageFolderDataset',
           'IMAGE_EXTENSIONS', 'PluginCocoPanopticDataset', 'PluginRandomQueryPatches',
           'PluginPackQueryPatchInputs', 'PluginLoadPanopticAnnotations']

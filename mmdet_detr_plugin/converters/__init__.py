"""Checkpoint converters between ``PluginDETR`` and other DETR layouts.

Each layout's names are one :class:`RenameTable`, read in both directions:

* :mod:`.mmdet`: mmdet 3.3's ``DETR`` (:func:`plugin_to_mmdet`,
  :func:`mmdet_to_plugin`);
* :mod:`.original`: the original release, facebookresearch/detr, box and
  panoptic models (:func:`convert_original`, :func:`original_to_plugin`,
  :func:`plugin_to_original`, :func:`load_release_file`); COCO panoptic's
  category ids in mmdet's label order are in :mod:`.coco_panoptic_ids`;
* :mod:`.hf`: transformers' ``DetrForObjectDetection`` (:func:`plugin_to_hf`,
  :func:`hf_to_plugin`, :func:`build_hf_detr`); transformers is imported by
  :func:`build_hf_detr` only;
* :mod:`.updetr`: UP-DETR's pre-trained checkpoint (:func:`updetr_to_plugin`,
  :func:`plugin_to_updetr`);
* :mod:`.legacy`: the plugin's own 0.1.0 layout
  (:func:`upgrade_plugin_state_dict`).
"""
from .coco_panoptic_ids import COCO_PANOPTIC_CATEGORIES, COCO_PANOPTIC_IDS
from .hf import build_hf_detr, hf_labels, hf_pixel_mask, hf_to_plugin, plugin_to_hf
from .legacy import upgrade_plugin_state_dict
from .mmdet import mmdet_to_plugin, plugin_to_mmdet
from .original import COCO_CATEGORY_IDS, OriginalCheckpointError, convert_original, \
    load_release_file, original_to_plugin, plugin_to_original
from .rename import RenameTable
from .updetr import plugin_to_updetr, updetr_to_plugin

__all__ = ['plugin_to_mmdet', 'mmdet_to_plugin', 'convert_original', 'original_to_plugin',
           'plugin_to_original', 'load_release_file', 'OriginalCheckpointError',
           'COCO_CATEGORY_IDS', 'COCO_PANOPTIC_IDS', 'COCO_PANOPTIC_CATEGORIES', 'plugin_to_hf',
           'hf_to_plugin', 'build_hf_detr', 'hf_pixel_mask', 'hf_labels',
           'upgrade_plugin_state_dict', 'RenameTable', 'updetr_to_plugin', 'plugin_to_updetr']

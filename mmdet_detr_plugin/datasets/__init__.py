"""Data set helpers (pure numpy/PIL: importable without mmdet)."""
from .toy_shapes import MIN_SHAPE_SIZE, TOY_CLASSES, make_toy_coco, render_toy_image, shape_mask

__all__ = ['TOY_CLASSES', 'MIN_SHAPE_SIZE', 'make_toy_coco', 'render_toy_image', 'shape_mask']

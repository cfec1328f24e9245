from .box_ops import (aligned_generalized_box_iou, box_area, box_cxcywh_to_xyxy,
                      box_xyxy_to_cxcywh, generalized_box_iou, image_scale)

__all__ = [
    'box_cxcywh_to_xyxy', 'box_xyxy_to_cxcywh', 'box_area', 'generalized_box_iou',
    'aligned_generalized_box_iou', 'image_scale'
]

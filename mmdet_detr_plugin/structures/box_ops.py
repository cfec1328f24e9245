"""Pure box maths used by the matcher and the set loss.

Formats: ``xyxy`` is (x1, y1, x2, y2); ``cxcywh`` is (centre x, centre y,
width, height). Functions work on any leading shape ``[..., 4]``.
"""
from typing import Tuple

import torch
from torch import Tensor


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """[..., 4] cxcywh -> [..., 4] xyxy."""
    cx, cy, w, h = boxes.unbind(-1)
    half_w, half_h = 0.5 * w, 0.5 * h
    return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=-1)


def box_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """[..., 4] xyxy -> [..., 4] cxcywh."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """[..., 4] xyxy -> [...] area (negative for inverted boxes)."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _union_and_enclosure(boxes1: Tensor, boxes2: Tensor, eps: float,
                         aligned: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """Intersection, union and enclosing area of xyxy boxes.

    Pairwise: boxes1 [..., N, 4], boxes2 [..., M, 4] -> three [..., N, M].
    Aligned:  boxes1 [..., 4],    boxes2 [..., 4]    -> three [...].
    ``eps`` is added to union and enclosure (as mmdet's ``bbox_overlaps``
    does), so degenerate boxes give finite values.
    """
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    if not aligned:
        boxes1 = boxes1.unsqueeze(-2)  # [..., N, 1, 4]
        boxes2 = boxes2.unsqueeze(-3)  # [..., 1, M, 4]
        area1 = area1.unsqueeze(-1)  # [..., N, 1]
        area2 = area2.unsqueeze(-2)  # [..., 1, M]
    inter_lt = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    inter_rb = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter_wh = (inter_rb - inter_lt).clamp_(min=0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = (area1 + area2 - inter).clamp_(min=eps)
    encl_lt = torch.minimum(boxes1[..., :2], boxes2[..., :2])
    encl_rb = torch.maximum(boxes1[..., 2:], boxes2[..., 2:])
    encl_wh = (encl_rb - encl_lt).clamp_(min=0)
    enclosure = (encl_wh[..., 0] * encl_wh[..., 1]).clamp_(min=eps)
    return inter, union, enclosure


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-6) -> Tensor:
    """Pairwise GIoU (Rezatofighi et al. 2019) of xyxy boxes.

    Args:
        boxes1 (Tensor): [..., N, 4] xyxy.
        boxes2 (Tensor): [..., M, 4] xyxy.
        eps (float): lower bound of union and enclosing area. Defaults to 1e-6.

    Returns:
        Tensor: [..., N, M] GIoU in [-1, 1].

    Example:
        >>> a = torch.tensor([[0., 0., 2., 2.]])
        >>> b = torch.tensor([[1., 1., 3., 3.], [4., 0., 5., 1.]])
        >>> generalized_box_iou(a, b, eps=0.)
        tensor([[-0.0794, -0.5000]])
    """
    inter, union, enclosure = _union_and_enclosure(boxes1, boxes2, eps, aligned=False)
    return inter / union - (enclosure - union) / enclosure


def aligned_generalized_box_iou(boxes1: Tensor, boxes2: Tensor,
                                eps: float = 1e-6) -> Tensor:
    """GIoU of corresponding xyxy boxes: [..., 4], [..., 4] -> [...]."""
    inter, union, enclosure = _union_and_enclosure(boxes1, boxes2, eps, aligned=True)
    return inter / union - (enclosure - union) / enclosure

"""Pure box maths used by the matcher and the set loss.

Formats: ``xyxy`` is (x1, y1, x2, y2); ``cxcywh`` is (centre x, centre y,
width, height). Functions work on any leading shape ``[..., 4]``.
"""
from typing import Sequence, Tuple

import torch
from torch import Tensor


def image_scale(img_shape: Sequence[int], like: Tensor) -> Tensor:
    """(h, w, ...) -> [4] (w, h, w, h), with ``like``'s dtype and device:
    multiplies normalised xyxy or cxcywh boxes into pixels."""
    img_h, img_w = img_shape[:2]
    return like.new_tensor([img_w, img_h, img_w, img_h])


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


def _aligned_terms(boxes1: Tensor, boxes2: Tensor, eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Intersection, union and enclosing area of corresponding xyxy boxes
    [..., 4] -> three [...]. ``eps`` bounds union and enclosure from below
    (as mmdet's ``bbox_overlaps``), so degenerate boxes give finite values."""
    inter_wh = (torch.minimum(boxes1[..., 2:], boxes2[..., 2:]) -
                torch.maximum(boxes1[..., :2], boxes2[..., :2])).clamp_(min=0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = (box_area(boxes1) + box_area(boxes2) - inter).clamp_(min=eps)
    encl_wh = (torch.maximum(boxes1[..., 2:], boxes2[..., 2:]) -
               torch.minimum(boxes1[..., :2], boxes2[..., :2])).clamp_(min=0)
    enclosure = (encl_wh[..., 0] * encl_wh[..., 1]).clamp_(min=eps)
    return inter, union, enclosure


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-6) -> Tensor:
    """Pairwise GIoU (Rezatofighi et al. 2019) of xyxy boxes.

    Each coordinate is laid out contiguously ([..., N, 1] against [..., 1, M])
    before broadcasting, which keeps every elementwise pass over the [N, M]
    result a dense loop: an order of magnitude faster on CPU than slicing the
    last axis of broadcast [N, M, 4] tensors, with identical values.

    Args:
        boxes1 (Tensor): [..., N, 4] xyxy.
        boxes2 (Tensor): [..., M, 4] xyxy (leading dims broadcast with boxes1's).
        eps (float): lower bound of union and enclosing area. Defaults to 1e-6.

    Returns:
        Tensor: [..., N, M] GIoU in [-1, 1].

    Example:
        >>> a = torch.tensor([[0., 0., 2., 2.]])
        >>> b = torch.tensor([[1., 1., 3., 3.], [4., 0., 5., 1.]])
        >>> generalized_box_iou(a, b, eps=0.)
        tensor([[-0.0794, -0.5000]])
    """
    a = boxes1.transpose(-1, -2).contiguous()  # [..., 4, N]
    b = boxes2.transpose(-1, -2).contiguous()  # [..., 4, M]
    ax1, ay1, ax2, ay2 = (a[..., i, :, None] for i in range(4))  # each [..., N, 1]
    bx1, by1, bx2, by2 = (b[..., i, None, :] for i in range(4))  # each [..., 1, M]
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    inter_w = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp_(min=0)
    inter_h = (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp_(min=0)
    inter = inter_w.mul_(inter_h)
    union = (area_a + area_b).sub_(inter).clamp_(min=eps)
    encl_w = torch.maximum(ax2, bx2).sub_(torch.minimum(ax1, bx1)).clamp_(min=0)
    encl_h = torch.maximum(ay2, by2).sub_(torch.minimum(ay1, by1)).clamp_(min=0)
    enclosure = encl_w.mul_(encl_h).clamp_(min=eps)
    # IoU - (enclosure - union) / enclosure
    return inter.div_(union).sub_(enclosure.sub(union).div_(enclosure))


def aligned_generalized_box_iou(boxes1: Tensor, boxes2: Tensor,
                                eps: float = 1e-6) -> Tensor:
    """GIoU of corresponding xyxy boxes: [..., 4], [..., 4] -> [...]."""
    inter, union, enclosure = _aligned_terms(boxes1, boxes2, eps)
    return inter / union - (enclosure - union) / enclosure

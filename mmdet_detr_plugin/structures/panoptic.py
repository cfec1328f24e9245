"""DETR's panoptic merge: per-query masks -> one panoptic segment map.

Segment ids follow mmdet's panoptic convention (``CocoPanopticMetric``,
``DetLocalVisualizer``): a pixel of a thing holds ``label + instance *
INSTANCE_OFFSET`` (instances 1, 2, ... per image), a pixel of stuff holds
``label`` (instance 0), and an unassigned pixel holds ``VOID = num_classes``.
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.evaluation.functional import INSTANCE_OFFSET


def _assign(mask_logits: Tensor, labels: Tensor, num_things: int,
            out_size: Tuple[int, int]) -> Tensor:
    """Each pixel to the query with the highest mask logit, stuff queries of
    one class merged into the first (best-scored) of them.

    Args:
        mask_logits (Tensor): [K, H, W] (``-inf`` where a query claims nothing).
        labels (Tensor): [K] long.
        num_things (int): labels below it are things.
        out_size (tuple): (h, w) of the result (nearest resize).

    Returns:
        Tensor: [h, w] long, the query of each pixel, -1 where every logit
        is ``-inf``.
    """
    best, ids = mask_logits.max(0)
    ids = ids.masked_fill(best == float('-inf'), -1)
    for label in labels[labels >= num_things].unique().tolist():
        same = (labels == label).nonzero()[:, 0]
        if len(same) > 1:
            ids = torch.where(torch.isin(ids, same), same[0], ids)
    if tuple(ids.shape) != tuple(out_size):
        ids = F.interpolate(ids[None, None].float(), size=tuple(out_size),
                            mode='nearest')[0, 0].long()
    return ids


def merge_panoptic(scores: Tensor, labels: Tensor, mask_logits: Tensor, num_things: int,
                   num_classes: int, out_size: Tuple[int, int],
                   min_area: int = 4) -> Tuple[Tensor, List[dict]]:
    """Merge the kept queries of one image into a panoptic segment map.

    Each pixel goes to the query whose mask logit is highest there; stuff
    segments of the same class become one segment; segments of ``min_area``
    pixels or fewer (counted at ``out_size``) are removed and the pixels
    re-assigned among the others, until none is that small (DETR's
    ``PostProcessPanoptic``). No kept query: every pixel is VOID.

    Args:
        scores (Tensor): [K] class scores of the kept queries.
        labels (Tensor): [K] long, their classes (things first: labels
            below ``num_things``).
        mask_logits (Tensor): [K, H, W] mask logits on the image (padding
            cropped); ``-inf`` where a query claims nothing.
        num_things (int): number of thing classes.
        num_classes (int): things + stuff; also the VOID id.
        out_size (tuple): (h, w) of the map (e.g. the original image).
        min_area (int): segments this small or smaller are dropped.
            Defaults to 4.

    Returns:
        tuple: the map [h, w] int32 (mmdet's panoptic ids, VOID =
        ``num_classes``) and its segments, each ``dict(id, label, isthing,
        area, score, query)`` (``query`` indexes the K inputs).
    """
    order = scores.argsort(descending=True, stable=True)
    keep = order
    while True:
        if len(keep) == 0:
            ids = torch.full(tuple(out_size), -1, dtype=torch.long, device=scores.device)
            break
        ids = _assign(mask_logits[keep], labels[keep], num_things, out_size)
        area = torch.bincount(ids[ids >= 0], minlength=len(keep))
        # a stuff query merged into an earlier one of its class has area 0 by construction
        merged = torch.zeros_like(area, dtype=torch.bool)
        seen = set()
        for i, label in enumerate(labels[keep].tolist()):
            if label >= num_things:
                merged[i] = label in seen
                seen.add(label)
        small = (area <= min_area) & ~merged
        if not small.any():
            break
        keep = keep[~small]

    pan = torch.full(tuple(out_size), num_classes, dtype=torch.int32, device=scores.device)
    segments = []
    instance = 0
    for i, k in enumerate(keep.tolist()):
        region = ids == i
        area = int(region.sum())
        if area == 0:
            continue
        label = int(labels[k])
        isthing = label < num_things
        if isthing:
            instance += 1
        seg_id = label + instance * INSTANCE_OFFSET if isthing else label
        pan[region] = seg_id
        segments.append(dict(id=seg_id, label=label, isthing=isthing, area=area,
                             score=float(scores[k]), query=k))
    return pan, segments


def box_mask_logits(boxes: Tensor, size: Tuple[int, int]) -> Tensor:
    """Masks that fill each box: the baseline a mask head must beat.

    A pixel inside several boxes goes to the smallest (objects drawn in
    front of larger regions); pixels in no box stay VOID.

    Args:
        boxes (Tensor): [K, 4] xyxy in pixels of ``size``.
        size (tuple): (H, W).

    Returns:
        Tensor: [K, H, W] logits for :func:`merge_panoptic`: minus the box
        area inside the box, ``-inf`` outside.
    """
    height, width = size
    ys = torch.arange(height, device=boxes.device, dtype=boxes.dtype)[:, None] + 0.5
    xs = torch.arange(width, device=boxes.device, dtype=boxes.dtype)[None, :] + 0.5
    x1, y1, x2, y2 = (boxes[:, i, None, None] for i in range(4))
    inside = (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)  # [K, H, W]
    area = ((x2 - x1) * (y2 - y1)).expand_as(inside)
    return torch.where(inside, -area, torch.full_like(area, float('-inf')))

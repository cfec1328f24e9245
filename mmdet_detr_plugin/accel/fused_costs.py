"""DETR's matching cost in one pass per cost element, on the CPU.

The eager form of ``class + L1 + GIoU`` (``match_costs.py``) makes about 30
elementwise passes over each [L, M, N] block; in dense scenes (900 queries,
500 boxes, 6 layers) that is most of the matcher's time. Here one loop,
compiled by numba when it is installed (``pip install numba``, or the
plugin's ``fast`` extra), computes each element's three costs and their sum
in registers, on all the threads torch was given.

Every operation is the eager form's, in the same order and in float32, so
the costs are bitwise equal to ``PluginHungarianAssigner``'s eager path
(the tests compare them element for element), and so are the matches.

:class:`FusedDetrCost` is installed as a ``PluginHungarianAssigner``'s
``cost_kernel`` by ``accelerate`` when its costs are exactly
``[PluginClassificationCost, PluginBBoxL1Cost, PluginIoUCost]`` in that order
(any weights), DETR's default; anything else keeps the eager path.
"""
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ..models.task_modules.assigners.match_costs import (PluginBBoxL1Cost,
                                                         PluginClassificationCost, PluginIoUCost)
from ..structures.box_ops import box_cxcywh_to_xyxy, image_scale
from . import compiled


def _compile():
    """The numba kernel, compiled on first use (about 2 s; numba caches it
    on disk for later processes); None when numba is not installed."""
    try:
        import numba
    except ImportError:
        return None

    def detr_cost(prob_t, labels, pred_cxcywh, pred_xyxy, gt_cxcywh, gt_xyxy, w_cls, w_l1,
                  w_giou, eps, out):  # pragma: no cover (compiled)
        # prob_t [L, C+1, N]; labels [M]; pred_* [L, 4, N]; gt_* [M, 4];
        # out [L, M, N]; all float32 but labels, scalars float32
        num_layers, num_gts, num_queries = out.shape
        zero = np.float32(0)
        for lm in numba.prange(num_layers * num_gts):
            layer = lm // num_gts
            m = lm - layer * num_gts
            prob = prob_t[layer, labels[m]]  # [N]
            cx, cy, w, h = (pred_cxcywh[layer, 0], pred_cxcywh[layer, 1],
                            pred_cxcywh[layer, 2], pred_cxcywh[layer, 3])
            x1, y1, x2, y2 = (pred_xyxy[layer, 0], pred_xyxy[layer, 1], pred_xyxy[layer, 2],
                              pred_xyxy[layer, 3])
            gcx, gcy, gw, gh = gt_cxcywh[m, 0], gt_cxcywh[m, 1], gt_cxcywh[m, 2], gt_cxcywh[m, 3]
            gx1, gy1, gx2, gy2 = gt_xyxy[m, 0], gt_xyxy[m, 1], gt_xyxy[m, 2], gt_xyxy[m, 3]
            gt_area = (gx2 - gx1) * (gy2 - gy1)
            row = out[layer, m]
            for n in range(num_queries):
                cls = prob[n] * w_cls
                # cdist(p=1): |d0| + |d1| + |d2| + |d3|, left to right
                l1 = ((abs(gcx - cx[n]) + abs(gcy - cy[n])) + abs(gw - w[n])
                      + abs(gh - h[n])) * w_l1
                # generalized_box_iou(gt, pred), the same operations
                pred_area = (x2[n] - x1[n]) * (y2[n] - y1[n])
                inter_w = max(min(x2[n], gx2) - max(x1[n], gx1), zero)
                inter_h = max(min(y2[n], gy2) - max(y1[n], gy1), zero)
                inter = inter_w * inter_h
                union = max((gt_area + pred_area) - inter, eps)
                encl_w = max(max(x2[n], gx2) - min(x1[n], gx1), zero)
                encl_h = max(max(y2[n], gy2) - min(y1[n], gy1), zero)
                enclosure = max(encl_w * encl_h, eps)
                giou = inter / union - (enclosure - union) / enclosure
                row[n] = (cls + l1) + giou * w_giou

    return compiled.jit(numba, parallel=True, nogil=True)(detr_cost)


@lru_cache(maxsize=None)
def kernel():
    """The compiled kernel (once per process), or None without numba."""
    return _compile()


def fused_weights(match_costs: Sequence) -> Optional[Tuple[float, float, float, float]]:
    """``(w_cls, w_l1, w_giou, eps)`` when ``match_costs`` are exactly DETR's
    three plugin costs in the default order; None otherwise."""
    types = [type(cost) for cost in match_costs]
    if types != [PluginClassificationCost, PluginBBoxL1Cost, PluginIoUCost]:
        return None
    cls, l1, iou = match_costs
    return cls.weight, l1.weight, iou.weight, iou.eps


MISSING_NUMBA = ("model.accel.matching_costs='fused' computes the matching costs with "
                 "numba: pip install numba (or mmdet-detr-plugin[fast]), or set "
                 "model.accel.matching_costs='auto'")


class FusedDetrCost:
    """``cost_kernel`` of ``PluginHungarianAssigner``: writes
    ``-w_cls p[label] + w_l1 L1 - w_giou GIoU`` of one image into ``out``
    in one compiled pass, for CPU tensors of at least ``min_elements`` costs.

    Args:
        weights (tuple): ``fused_weights(...)`` of the assigner's costs.
        min_elements (int): smaller images (or any image on another
            device) return False and take the eager costs. Defaults to 0.
    """

    def __init__(self, weights: Tuple[float, float, float, float],
                 min_elements: int = 0) -> None:
        self.weights = weights
        self.min_elements = min_elements

    def __call__(self, logits: Tensor, boxes: Tensor, gt_labels: Tensor, gt_boxes: Tensor,
                 img_shape: Sequence[int], out: Tensor) -> bool:
        """Args:
            logits (Tensor): [L, N, C + 1] class logits.
            boxes (Tensor): [L, N, 4] normalised cxcywh.
            gt_labels (Tensor): [M] labels.
            gt_boxes (Tensor): [M, 4] normalised cxcywh.
            img_shape (tuple): (h, w) in pixels; GIoU is taken in pixels.
            out (Tensor): [L, M, N] float32.

        Returns:
            bool: whether ``out`` was written.
        """
        if (out.device.type != 'cpu' or not out.is_contiguous()
                or out.numel() < self.min_elements or torch.jit.is_tracing()):
            return False
        detr_cost = kernel()
        if detr_cost is None:
            raise ImportError(MISSING_NUMBA)
        import numba
        compiled.set_threads(numba, torch.get_num_threads())
        w_cls, w_l1, w_giou, eps = self.weights
        logits, boxes, gt_boxes = logits.detach(), boxes.detach().float(), gt_boxes.detach().float()
        scale = image_scale(img_shape, boxes)
        # the eager path's own tensors, laid out coordinate-major: [L, 4, N]
        prob_t = logits.float().softmax(-1).transpose(-1, -2).contiguous()  # [L, C + 1, N]
        pred_cxcywh = boxes.transpose(-1, -2).contiguous()
        pred_xyxy = (box_cxcywh_to_xyxy(boxes) * scale).transpose(-1, -2).contiguous()
        gt_xyxy = (box_cxcywh_to_xyxy(gt_boxes) * scale).contiguous()  # [M, 4] pixels
        f32 = np.float32
        detr_cost(prob_t.numpy(), gt_labels.numpy(), pred_cxcywh.numpy(), pred_xyxy.numpy(),
                  gt_boxes.contiguous().numpy(), gt_xyxy.numpy(), f32(-w_cls), f32(w_l1),
                  f32(-w_giou), f32(eps), out.numpy())
        return True

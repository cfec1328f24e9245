"""Pairwise matching costs between predictions and ground-truth boxes.

Each cost has two entry points:

* ``__call__(pred_instances, gt_instances, img_meta) -> [N, M]``, mmdet's
  match-cost contract (``scores`` are logits, ``bboxes`` are xyxy in pixels
  of ``img_meta['img_shape']``), so the costs also work inside mmdet's
  ``HungarianAssigner``;
* ``batched(logits, boxes, gt_labels, gt_boxes, img_shape) -> [L, M, N]``
  for the predictions of all L decoder layers of one image at once, with
  boxes in normalised (cx, cy, w, h) as the head predicts them. This is what
  ``PluginHungarianAssigner.assign_batch`` uses. The result is gt-major
  ([M, N] per layer): the orientation scipy's solver works in when there
  are fewer boxes than queries, and the cheaper one to gather class
  probabilities in.

Costs are computed in float32 whatever the input dtype, so that matching
stays exact under mixed precision. The constants the reference drops (the 1
in ``1 - p`` and ``1 - GIoU``) do not change the matching and are dropped too.
"""
from typing import Optional, Sequence

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.registry import TASK_UTILS
from ....structures.box_ops import (box_cxcywh_to_xyxy, box_xyxy_to_cxcywh,
                                    generalized_box_iou, image_scale)


class _MatchCost:
    """Weight handling shared by the costs."""

    def __init__(self, weight: float = 1.) -> None:
        self.weight = weight

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(weight={self.weight})'


@TASK_UTILS.register_module()
class PluginClassificationCost(_MatchCost):
    """``-softmax(logits)[gt_label]`` (DETR paper, eq. 1; reference:
    ``HungarianMatcher.cost_class``; mmdet: ``ClassificationCost``).

    Example:
        >>> logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]]))
        >>> PluginClassificationCost(weight=1.).batched(
        ...     logits[None], None, torch.tensor([1, 0]), None, None)
        tensor([[[-0.2000, -0.8000],
                 [-0.7000, -0.1000]]])
    """

    def batched(self, logits: Tensor, boxes: Optional[Tensor], gt_labels: Tensor,
                gt_boxes: Optional[Tensor], img_shape: Optional[Sequence[int]]) -> Tensor:
        """logits [L, N, C + 1], gt_labels [M] -> cost [L, M, N]."""
        prob = logits.float().softmax(-1).transpose(-1, -2)  # [L, C + 1, N]
        return prob.index_select(-2, gt_labels).mul_(-self.weight)

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        return self.batched(pred_instances.scores[None], None, gt_instances.labels, None,
                            None)[0].t()


@TASK_UTILS.register_module()
class PluginFocalLossCost(_MatchCost):
    """Focal classification cost of Deformable DETR, to pair with
    ``PluginSetCriterion(cls_loss='focal')``: with ``p = sigmoid(logit)`` of
    the target class, ``alpha (1 - p)^gamma (-log p) - (1 - alpha) p^gamma
    (-log(1 - p))`` (mmdet: ``FocalLossCost``). Only the first K logits are
    read (the no-object logit of the K + 1 is ignored).

    Args:
        weight (float): Defaults to 1.
        alpha (float): Defaults to 0.25.
        gamma (float): Defaults to 2.
        eps (float): inside the logs. Defaults to 1e-12.
    """

    def __init__(self, weight: float = 1., alpha: float = 0.25, gamma: float = 2.,
                 eps: float = 1e-12) -> None:
        super().__init__(weight)
        self.alpha = alpha
        self.gamma = gamma
        self.eps = eps

    def batched(self, logits: Tensor, boxes: Optional[Tensor], gt_labels: Tensor,
                gt_boxes: Optional[Tensor], img_shape: Optional[Sequence[int]]) -> Tensor:
        """logits [L, N, C (+ 1)], gt_labels [M] -> cost [L, M, N]."""
        prob = logits.float().transpose(-1, -2).index_select(-2, gt_labels).sigmoid()
        neg = (1 - self.alpha) * prob.pow(self.gamma) * -(1 - prob + self.eps).log()
        pos = self.alpha * (1 - prob).pow(self.gamma) * -(prob + self.eps).log()
        return (pos - neg).mul_(self.weight)

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        return self.batched(pred_instances.scores[None], None, gt_instances.labels, None,
                            None)[0].t()


@TASK_UTILS.register_module()
class PluginBBoxL1Cost(_MatchCost):
    """L1 distance between normalised (cx, cy, w, h) boxes (reference:
    ``cost_bbox``; mmdet: ``BBoxL1Cost(box_format='xywh')``)."""

    def batched(self, logits: Optional[Tensor], boxes: Tensor, gt_labels: Optional[Tensor],
                gt_boxes: Tensor, img_shape: Sequence[int]) -> Tensor:
        """boxes [L, N, 4] and gt_boxes [M, 4], both normalised cxcywh -> [L, M, N]."""
        boxes = boxes.float()
        gt_boxes = gt_boxes.float().expand(boxes.shape[0], -1, -1)  # [L, M, 4]
        return torch.cdist(gt_boxes, boxes, p=1).mul_(self.weight)

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: dict, **kwargs) -> Tensor:
        scale = image_scale(img_meta['img_shape'], pred_instances.bboxes.float())
        boxes = box_xyxy_to_cxcywh(pred_instances.bboxes.float() / scale)
        gt_boxes = box_xyxy_to_cxcywh(gt_instances.bboxes.float() / scale)
        return self.batched(None, boxes[None], None, gt_boxes, None)[0].t()


@TASK_UTILS.register_module()
class PluginIoUCost(_MatchCost):
    """``-GIoU`` of xyxy boxes in image pixels (reference: ``cost_giou``;
    mmdet: ``IoUCost(iou_mode='giou')``). Pixels rather than normalised units
    because the ``eps`` guarding union and enclosure is absolute.

    Args:
        weight (float): Defaults to 1.
        eps (float): lower bound of union and enclosure. Defaults to 1e-6.
    """

    def __init__(self, weight: float = 1., eps: float = 1e-6) -> None:
        super().__init__(weight)
        self.eps = eps

    def batched(self, logits: Optional[Tensor], boxes: Tensor, gt_labels: Optional[Tensor],
                gt_boxes: Tensor, img_shape: Sequence[int]) -> Tensor:
        """boxes [L, N, 4], gt_boxes [M, 4], normalised cxcywh -> [L, M, N]."""
        boxes = boxes.float()
        scale = image_scale(img_shape, boxes)
        boxes = box_cxcywh_to_xyxy(boxes) * scale
        gt_boxes = box_cxcywh_to_xyxy(gt_boxes.float()) * scale
        return generalized_box_iou(gt_boxes, boxes, self.eps).mul_(-self.weight)

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        giou = generalized_box_iou(pred_instances.bboxes.float(), gt_instances.bboxes.float(),
                                   self.eps)
        return giou.mul_(-self.weight)

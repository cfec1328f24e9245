"""DETR's set-prediction loss (DETR paper, section 3.1, eq. 2 and A.2).

Given the one-to-one matching of every decoder layer, for each layer:

* ``loss_cls``: cross-entropy over all queries, target "no object" (the
  last class) for unmatched ones, whose weight is ``no_object_weight``
  (0.1); a weighted mean, as ``F.cross_entropy(weight=...)`` computes it,
  whose denominator (the sum of weights) is averaged over processes;
* ``loss_bbox``: L1 between matched normalised (cx, cy, w, h) boxes;
* ``loss_iou``: ``1 - GIoU`` between matched boxes;

box terms are summed and divided by the number of ground-truth boxes in the
batch, averaged over processes and at least 1 (reference: ``SetCriterion``;
mmdet: ``DETRHead.loss_by_feat``). All layers are computed together from
stacked tensors; there is no loop over layers or images.

With the decoder's feature predictions and the patch features of UP-DETR
(Dai et al. 2021, eq. 2), a fourth term per layer:

* ``loss_feature``: on matched pairs, the squared difference between the
  L2-normalised predicted feature and the L2-normalised target feature,
  summed over pairs and channels and divided by the number of boxes.

``cls_loss='focal'`` replaces the cross-entropy by the sigmoid focal loss of
Deformable DETR (Zhu et al. 2021, a convergence aid; Lin et al. 2017): the
first K logits are independent per-class sigmoid logits (the last, no-object
logit is unused), the target of an unmatched query is all zeros, and the sum
over queries and classes is divided by the number of boxes.

Averaging both denominators over processes makes P processes with b images
each produce, after DDP's gradient averaging, exactly the gradients of one
process with P * b images (the reference normalises the cross-entropy per
process instead; ``sync_cls_avg_factor=False`` restores that).
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.utils import reduce_mean
from ...structures.box_ops import aligned_generalized_box_iou, box_cxcywh_to_xyxy, image_scale


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25,
                       gamma: float = 2.) -> Tensor:
    """Element-wise sigmoid focal loss (Lin et al. 2017), unreduced:
    ``-alpha_t * (1 - p_t) ** gamma * log(p_t)``; ``alpha < 0`` disables the
    alpha weighting (as torchvision's ``sigmoid_focal_loss``)."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


@MODELS.register_module()
class PluginSetCriterion(BaseModule):
    """Weighted sum of classification, L1 and GIoU losses over matched sets.

    Args:
        num_classes (int): number of object classes K (no-object excluded).
        no_object_weight (float): relative weight of the no-object class in
            the cross-entropy. Defaults to 0.1.
        loss_cls_weight (float): Defaults to 1.
        loss_bbox_weight (float): L1 weight. Defaults to 5.
        loss_iou_weight (float): GIoU weight. Defaults to 2.
        aux_loss (bool): also supervise every earlier decoder layer (keys
            ``d{i}.loss_*``). Defaults to True.
        iou_eps (float): lower bound of union and enclosure in the GIoU.
            Defaults to 1e-6.
        sync_cls_avg_factor (bool): average the cross-entropy's denominator
            over processes. Defaults to True.
        cls_loss (str): ``'ce'`` (DETR's weighted softmax cross-entropy) or
            ``'focal'`` (sigmoid focal loss over the first K logits, divided
            by the number of boxes; ``no_object_weight`` is then unused; pair
            it with ``PluginFocalLossCost`` in the matcher). Defaults to 'ce'.
        focal_alpha (float): focal loss alpha. Defaults to 0.25.
        focal_gamma (float): focal loss gamma. Defaults to 2.
        loss_feature_weight (float): weight of UP-DETR's feature
            reconstruction loss, computed when the head passes feature
            predictions. Defaults to 1.
    """

    def __init__(self, num_classes: int, no_object_weight: float = 0.1,
                 loss_cls_weight: float = 1., loss_bbox_weight: float = 5.,
                 loss_iou_weight: float = 2., aux_loss: bool = True,
                 iou_eps: float = 1e-6, sync_cls_avg_factor: bool = True,
                 cls_loss: str = 'ce', focal_alpha: float = 0.25,
                 focal_gamma: float = 2., loss_feature_weight: float = 1.) -> None:
        super().__init__()
        if cls_loss not in ('ce', 'focal'):
            raise ValueError(f"PluginSetCriterion.cls_loss must be 'ce' or 'focal', "
                             f'got {cls_loss!r}')
        self.cls_loss = cls_loss
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.num_classes = num_classes
        self.no_object_weight = no_object_weight
        self.loss_cls_weight = loss_cls_weight
        self.loss_bbox_weight = loss_bbox_weight
        self.loss_iou_weight = loss_iou_weight
        self.loss_feature_weight = loss_feature_weight
        self.aux_loss = aux_loss
        self.iou_eps = iou_eps
        self.sync_cls_avg_factor = sync_cls_avg_factor
        class_weight = torch.ones(num_classes + 1)
        class_weight[-1] = no_object_weight
        self.register_buffer('class_weight', class_weight, persistent=False)

    @staticmethod
    def gather_matches(matches: Sequence[Tuple[Tensor, Tensor]],
                       num_gts: Sequence[int]) -> Tuple[Tensor, Tensor, Tensor]:
        """Flatten per-image matches into batch-wide index tensors.

        Args:
            matches: per image ``(query_inds [L, K_b], gt_inds [L, K_b])``.
            num_gts: per image number of gt boxes M_b.

        Returns:
            tuple: ``batch_inds`` [K] (image of each match), ``query_inds``
            [L, K], ``flat_gt_inds`` [L, K] into the concatenated gts of the
            batch; K = sum_b K_b.
        """
        device = matches[0][0].device
        batch_inds = torch.cat([
            torch.full((q.shape[1], ), b, dtype=torch.long, device=device)
            for b, (q, _) in enumerate(matches)
        ])
        offsets = [0]
        for m in num_gts[:-1]:
            offsets.append(offsets[-1] + m)
        query_inds = torch.cat([q for q, _ in matches], dim=1)
        flat_gt_inds = torch.cat([g + off for (_, g), off in zip(matches, offsets)], dim=1)
        return batch_inds, query_inds, flat_gt_inds

    def forward(self, cls_scores: Tensor, bbox_preds: Tensor,
                matches: Sequence[Tuple[Tensor, Tensor]], gt_labels: Sequence[Tensor],
                gt_boxes: Sequence[Tensor], img_shapes: Sequence[Sequence[int]],
                feature_preds: Optional[Tensor] = None,
                feature_targets: Optional[Sequence[Tensor]] = None) -> Dict[str, Tensor]:
        """Compute the losses of every layer.

        Args:
            cls_scores (Tensor): [L, B, N, K + 1] logits.
            bbox_preds (Tensor): [L, B, N, 4] normalised cxcywh.
            matches (list): per image ``(query_inds [L, K_b], gt_inds [L, K_b])``
                from ``PluginHungarianAssigner.assign_batch``.
            gt_labels (list[Tensor]): B tensors [M_b].
            gt_boxes (list[Tensor]): B tensors [M_b, 4], normalised cxcywh.
            img_shapes (list[tuple]): B (h, w) in pixels (GIoU is computed in
                pixels, where its ``eps`` is meant).
            feature_preds (Tensor, optional): [L, B, N, C] predicted features
                (UP-DETR's ``feature_align``).
            feature_targets (list[Tensor], optional): B tensors [M_b, C], the
                target feature of each ground-truth box (its patch's).

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_iou`` (and
            ``loss_feature`` with features) of the last layer and
            ``d{i}.loss_*`` of the others.
        """
        # losses in float32, also under mixed precision
        cls_scores, bbox_preds = cls_scores.float(), bbox_preds.float()
        num_layers, batch_size, num_queries, _ = cls_scores.shape
        device = cls_scores.device
        layer_inds = torch.arange(num_layers, device=device)[:, None]  # [L, 1]
        batch_inds, query_inds, flat_gt_inds = self.gather_matches(
            matches, [len(labels) for labels in gt_labels])
        all_labels = torch.cat(list(gt_labels))  # [M]
        all_boxes = torch.cat(list(gt_boxes)).float()  # [M, 4]

        # 1. classification: targets [L, B, N], no-object unless matched
        target_classes = torch.full((num_layers, batch_size, num_queries), self.num_classes,
                                    dtype=torch.long, device=device)
        target_classes[layer_inds, batch_inds, query_inds] = all_labels[flat_gt_inds]
        # 2. number of boxes, averaged over processes (no host sync here)
        num_boxes = cls_scores.new_tensor(float(len(all_labels)))
        num_boxes = reduce_mean(num_boxes).clamp(min=1)

        if self.cls_loss == 'focal':
            # one-hot over K classes; "no object" (index K) is the all-zero row
            onehot = F.one_hot(target_classes, self.num_classes + 1)[..., :-1]
            loss_cls = sigmoid_focal_loss(cls_scores[..., :self.num_classes],
                                          onehot.to(cls_scores.dtype), self.focal_alpha,
                                          self.focal_gamma)
            loss_cls = loss_cls.view(num_layers, -1).sum(1) / num_boxes
        else:
            class_weight = self.class_weight
            loss_cls = F.cross_entropy(cls_scores.flatten(0, 2), target_classes.flatten(),
                                       weight=class_weight, reduction='none')
            cls_avg_factor = class_weight[target_classes].view(num_layers, -1).sum(1)  # [L]
            if self.sync_cls_avg_factor:
                cls_avg_factor = reduce_mean(cls_avg_factor)
            loss_cls = loss_cls.view(num_layers, -1).sum(1) / cls_avg_factor.clamp(min=1)

        # 3. box terms on matched pairs: [L, K, 4]
        matched = bbox_preds[layer_inds, batch_inds, query_inds]
        targets = all_boxes[flat_gt_inds]
        scales = torch.stack([image_scale(s, matched) for s in img_shapes])[batch_inds]  # [K, 4]
        loss_bbox, loss_iou = self.box_losses(matched, targets, scales, num_boxes)

        per_layer = [loss_cls * self.loss_cls_weight, loss_bbox * self.loss_bbox_weight,
                     loss_iou * self.loss_iou_weight]  # each [L]
        names = ['loss_cls', 'loss_bbox', 'loss_iou']

        # 4. feature reconstruction on matched pairs (UP-DETR): [L, K, C]
        if (feature_preds is None) != (feature_targets is None):
            raise ValueError('PluginSetCriterion needs both feature_preds and '
                             'feature_targets, or neither')
        if feature_preds is not None:
            pred = F.normalize(feature_preds.float()[layer_inds, batch_inds, query_inds], dim=-1)
            target = F.normalize(torch.cat(list(feature_targets)).float(), dim=-1)[flat_gt_inds]
            loss_feature = (pred - target).pow(2).sum((1, 2)) / num_boxes
            per_layer.append(loss_feature * self.loss_feature_weight)
            names.append('loss_feature')

        return self.per_layer_dict(names, per_layer)

    @staticmethod
    def per_layer_dict(names: Sequence[str], per_layer: Sequence[Tensor]) -> Dict[str, Tensor]:
        """mmdet's keys: ``name`` for the last layer, ``d{i}.name`` for the
        others, from per-layer values [L]."""
        losses = {name: values[-1] for name, values in zip(names, per_layer)}
        for i in range(len(per_layer[0]) - 1):
            losses.update({f'd{i}.{name}': values[i] for name, values in zip(names, per_layer)})
        return losses

    def box_losses(self, preds: Tensor, targets: Tensor, scales: Tensor,
                   num_boxes: Tensor) -> Tuple[Tensor, Tensor]:
        """Unweighted L1 and ``1 - GIoU`` of paired boxes, per layer.

        Args:
            preds (Tensor): [L, K, 4] normalised cxcywh.
            targets (Tensor): [L, K, 4] (or [K, 4]) normalised cxcywh.
            scales (Tensor): [K, 4] each pair's image (w, h, w, h) in pixels.
            num_boxes (Tensor): the normaliser.

        Returns:
            tuple[Tensor]: L1 [L] and GIoU [L] losses, each summed over pairs
            and divided by ``num_boxes``.
        """
        loss_bbox = (preds - targets).abs().sum((1, 2)) / num_boxes
        giou = aligned_generalized_box_iou(box_cxcywh_to_xyxy(preds) * scales,
                                           box_cxcywh_to_xyxy(targets) * scales, self.iou_eps)
        return loss_bbox, (1 - giou).sum(1) / num_boxes

    def denoising(self, cls_scores: Tensor, bbox_preds: Tensor, labels: Tensor,
                  boxes: Tensor, scales: Tensor) -> Dict[str, Tensor]:
        """Losses of denoising queries (DN-DETR): each query's target is the
        box it was made from, so there is no matching and no "no object".

        Args:
            cls_scores (Tensor): [L, K, K_cls + 1] logits of the K denoising
                queries with a target.
            bbox_preds (Tensor): [L, K, 4] normalised cxcywh.
            labels (Tensor): [K] clean labels.
            boxes (Tensor): [K, 4] clean boxes, normalised cxcywh.
            scales (Tensor): [K, 4] image (w, h, w, h) in pixels.

        Returns:
            dict[str, Tensor]: ``dn_loss_cls``, ``dn_loss_bbox``,
            ``dn_loss_iou`` and ``d{i}.dn_loss_*``, weighted as the matching
            losses and divided by K averaged over processes (at least 1).
        """
        cls_scores, bbox_preds = cls_scores.float(), bbox_preds.float()
        num_layers, num_queries = cls_scores.shape[:2]
        num_boxes = reduce_mean(cls_scores.new_tensor(float(num_queries))).clamp(min=1)
        if self.cls_loss == 'focal':
            onehot = F.one_hot(labels, self.num_classes).to(cls_scores.dtype)  # [K, K_cls]
            loss_cls = sigmoid_focal_loss(cls_scores[..., :self.num_classes],
                                          onehot.expand(num_layers, -1, -1), self.focal_alpha,
                                          self.focal_gamma).sum((1, 2))
        else:
            loss_cls = F.cross_entropy(cls_scores.flatten(0, 1), labels.repeat(num_layers),
                                       reduction='none').view(num_layers, -1).sum(1)
        loss_bbox, loss_iou = self.box_losses(bbox_preds, boxes.float(), scales, num_boxes)
        per_layer = [loss_cls / num_boxes * self.loss_cls_weight,
                     loss_bbox * self.loss_bbox_weight, loss_iou * self.loss_iou_weight]
        return self.per_layer_dict(['dn_loss_cls', 'dn_loss_bbox', 'dn_loss_iou'], per_layer)

"""DETR's prediction head: class and box FFNs shared by all decoder layers
(DETR paper, section 3.2 "Prediction feed-forward networks")."""
import logging
import math
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptMultiConfig
from ...structures.box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, image_scale


@MODELS.register_module()
class PluginDETRHead(BaseModule):
    """Class logits (K + 1, the last being "no object") and a box MLP with a
    sigmoid giving normalised (cx, cy, w, h), applied to every decoder layer.

    The interface is mmdet's ``DETRHead``'s: ``forward(hidden_states)``,
    ``loss``, ``predict``, ``loss_by_feat``, ``predict_by_feat``, with the
    same loss keys and prediction fields. Matching and losses run for all
    layers and images at once (``PluginHungarianAssigner.assign_batch``,
    ``PluginSetCriterion``).

    Args:
        num_classes (int): number of object classes K, no-object excluded.
        embed_dims (int): decoder width d. Defaults to 256.
        num_reg_fcs (int): hidden layers of the box MLP (d -> d, ReLU); a
            final d -> 4 layer follows. Defaults to 2 (DETR's 3-layer MLP).
        criterion (dict): set-loss config; ``num_classes`` is filled in.
            Defaults to ``PluginSetCriterion`` with DETR's weights. With its
            ``cls_loss='focal'`` the head scores classes by sigmoid of the
            first K logits instead of a softmax over K + 1, and the class
            biases start at the prior ``-log((1 - 0.01) / 0.01)`` (Deformable
            DETR); the no-object logit is then unused.
        train_cfg (dict): holds ``assigner``. Defaults to
            ``PluginHungarianAssigner`` with DETR's costs.
        test_cfg (dict): ``max_per_img``, queries kept per image (by score).
            Defaults to 100.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int = 256,
                 num_reg_fcs: int = 2,
                 criterion: ConfigType = dict(type='PluginSetCriterion'),
                 train_cfg: OptConfigType = dict(assigner=dict(type='PluginHungarianAssigner')),
                 test_cfg: OptConfigType = dict(max_per_img=100),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'model.bbox_head.num_classes must be a positive int, '
                             f'got {num_classes!r}')
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg if test_cfg is not None else dict()
        if train_cfg:
            if 'assigner' not in train_cfg:
                raise KeyError('model.train_cfg needs an "assigner" for PluginDETRHead')
            self.assigner = TASK_UTILS.build(train_cfg['assigner'])
        criterion = dict(criterion)
        criterion.setdefault('num_classes', num_classes)
        self.criterion = MODELS.build(criterion)

        self.fc_cls = nn.Linear(embed_dims, num_classes + 1)
        self.bbox_mlp = nn.ModuleList(
            [nn.Linear(embed_dims, embed_dims) for _ in range(num_reg_fcs)] +
            [nn.Linear(embed_dims, 4)])
        self.use_sigmoid_cls = getattr(self.criterion, 'cls_loss', 'ce') == 'focal'

    def init_weights(self) -> None:
        super().init_weights()
        if self.use_sigmoid_cls:
            # focal loss: start every class at a 1% prior (Lin et al. 2017)
            prior_prob = 0.01
            nn.init.constant_(self.fc_cls.bias, -math.log((1 - prior_prob) / prior_prob))

    # ------------------------------------------------------------------ #
    def forward(self, hidden_states: Tensor,
                references: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Decoder states [L, B, N, d] -> logits [L, B, N, K + 1] and boxes
        [L, B, N, 4] (normalised cxcywh). With ``references`` [B, N, 2]
        (anchor points) the box centre, with [B, N, 4] (anchor boxes) the
        whole box, is predicted as an offset from the reference in logit
        space."""
        cls_scores = self.fc_cls(hidden_states)
        x = hidden_states
        for layer in self.bbox_mlp[:-1]:
            x = F.relu(layer(x))
        x = self.bbox_mlp[-1](x)
        if references is not None:
            refs = torch.logit(references.to(x.dtype).clamp(1e-5, 1 - 1e-5))
            num_refs = refs.shape[-1]
            x = torch.cat((x[..., :num_refs] + refs, x[..., num_refs:]), dim=-1)
        return cls_scores, x.sigmoid()

    # ------------------------------------------------------------------ #
    def loss(self, hidden_states: Tensor, batch_data_samples: SampleList,
             num_query_groups: int = 1, references: Optional[Tensor] = None,
             denoising: Optional[Dict] = None) -> Dict[str, Tensor]:
        """Forward and set loss. Returns mmdet's loss dict.

        With ``num_query_groups`` G > 1 (``PluginDETR``'s query groups), the
        G * N queries of each image form G independent sets of N, each
        matched to the image's boxes on its own; the losses average over
        the groups. With ``denoising`` (``PluginDenoisingQueries``), its
        leading queries are denoising queries: their losses are added as
        ``dn_loss_*`` (:meth:`denoising_loss`) and the rest are matched.
        """
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        cls_scores, bbox_preds = self(hidden_states, references)
        dn_losses = {}
        if denoising is not None:
            num_dn = denoising['num_queries']
            dn_losses = self.denoising_loss(cls_scores[:, :, :num_dn], bbox_preds[:, :, :num_dn],
                                            denoising, batch_img_metas)
            cls_scores, bbox_preds = cls_scores[:, :, num_dn:], bbox_preds[:, :, num_dn:]
        if num_query_groups > 1:
            # [L, B, G*N, *] -> [L, B*G, N, *]: each group becomes a copy of its image
            num_layers, batch_size, num_all = cls_scores.shape[:3]
            shape = (num_layers, batch_size * num_query_groups, num_all // num_query_groups)
            cls_scores = cls_scores.reshape(*shape, -1)
            bbox_preds = bbox_preds.reshape(*shape, 4)
            batch_gt_instances = [gt for gt in batch_gt_instances for _ in range(num_query_groups)]
            batch_img_metas = [m for m in batch_img_metas for _ in range(num_query_groups)]
        losses = self.loss_by_feat(cls_scores, bbox_preds, batch_gt_instances, batch_img_metas)
        losses.update(dn_losses)
        return losses

    def denoising_loss(self, cls_scores: Tensor, bbox_preds: Tensor, denoising: Dict,
                       batch_img_metas: List[dict]) -> Dict[str, Tensor]:
        """Losses of the denoising queries against the boxes they were made
        from (no matching).

        Args:
            cls_scores (Tensor): [L, B, G * M, K + 1] logits of the denoising
                queries; query ``g * M + j`` of image b stands for its box j.
            bbox_preds (Tensor): [L, B, G * M, 4] normalised cxcywh.
            denoising (dict): ``num_groups`` G, ``labels`` [B, M], ``boxes``
                [B, M, 4] normalised cxcywh, ``valid`` [B, M].
            batch_img_metas (list[dict]): ``img_shape`` of each image.

        Returns:
            dict[str, Tensor]: ``dn_loss_cls``, ``dn_loss_bbox``,
            ``dn_loss_iou`` (and ``d{i}.dn_loss_*`` with auxiliary losses);
            zeros, still in the graph, when the batch has no box.
        """
        if not self.criterion.aux_loss:
            cls_scores, bbox_preds = cls_scores[-1:], bbox_preds[-1:]
        groups = denoising['num_groups']
        valid = denoising['valid'].repeat(1, groups)  # [B, G * M]
        batch_inds, query_inds = valid.nonzero(as_tuple=True)  # [K] each
        max_gts = denoising['labels'].shape[1]
        gt_inds = query_inds % max(max_gts, 1)
        scales = torch.stack([image_scale(m['img_shape'], bbox_preds)
                              for m in batch_img_metas])[batch_inds]  # [K, 4]
        losses = self.criterion.denoising(
            cls_scores[:, batch_inds, query_inds], bbox_preds[:, batch_inds, query_inds],
            denoising['labels'][batch_inds, gt_inds], denoising['boxes'][batch_inds, gt_inds],
            scales)
        if not len(batch_inds):  # nothing to denoise: zeros that keep the graph whole
            zero = cls_scores.sum() * 0. + bbox_preds.sum() * 0.
            losses = {k: zero for k in losses}
        return losses

    def loss_by_feat(self, all_layers_cls_scores: Tensor, all_layers_bbox_preds: Tensor,
                     batch_gt_instances: InstanceList, batch_img_metas: List[dict],
                     batch_gt_instances_ignore: Optional[InstanceList] = None
                     ) -> Dict[str, Tensor]:
        """Match and compute the set loss.

        Args:
            all_layers_cls_scores (Tensor): [L, B, N, K + 1] logits.
            all_layers_bbox_preds (Tensor): [L, B, N, 4] normalised cxcywh.
            batch_gt_instances (list[InstanceData]): ``bboxes`` [M_b, 4] xyxy
                in pixels of ``img_shape``, ``labels`` [M_b].
            batch_img_metas (list[dict]): each with ``img_shape`` (h, w).

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_iou`` and,
            with auxiliary losses, ``d{i}.loss_*`` for layers 0..L-2.
        """
        if batch_gt_instances_ignore is not None:
            raise ValueError('PluginDETRHead does not use ignored boxes '
                             '(batch_gt_instances_ignore must be None)')
        if not self.criterion.aux_loss:
            all_layers_cls_scores = all_layers_cls_scores[-1:]
            all_layers_bbox_preds = all_layers_bbox_preds[-1:]
        targets = self.match(all_layers_cls_scores, all_layers_bbox_preds, batch_gt_instances,
                             batch_img_metas)
        return self.criterion(all_layers_cls_scores, all_layers_bbox_preds, **targets)

    def match(self, all_layers_cls_scores: Tensor, all_layers_bbox_preds: Tensor,
              batch_gt_instances: InstanceList, batch_img_metas: List[dict],
              return_keeps: bool = False) -> Union[Dict, Tuple[Dict, List]]:
        """Checked targets and the matching of every layer and image.

        Returns:
            dict: the criterion's ``matches`` (per image ``(query_inds [L, K_b],
            gt_inds [L, K_b])``), ``gt_labels`` (B tensors [M_b]),
            ``gt_boxes`` (B tensors [M_b, 4], normalised cxcywh) and
            ``img_shapes`` (B (h, w)); with ``return_keeps`` also, per image,
            None or the bool [M_b] of boxes kept by ``_validate_gt`` (gt
            indices refer to the kept boxes).
        """
        img_shapes = [meta['img_shape'][:2] for meta in batch_img_metas]
        gt_labels = [gt.labels.long() for gt in batch_gt_instances]
        gt_xyxy, gt_labels, keeps = self._validate_gt(
            [gt.bboxes for gt in batch_gt_instances], gt_labels, batch_img_metas)
        gt_boxes = []  # normalised cxcywh [M_b, 4]
        for boxes, img_shape in zip(gt_xyxy, img_shapes):
            gt_boxes.append(box_xyxy_to_cxcywh(boxes / image_scale(img_shape, boxes)))
        matches = self.assigner.assign_batch(all_layers_cls_scores, all_layers_bbox_preds,
                                             gt_labels, gt_boxes, img_shapes)
        targets = dict(matches=matches, gt_labels=gt_labels, gt_boxes=gt_boxes,
                       img_shapes=img_shapes)
        return (targets, keeps) if return_keeps else targets

    def _validate_gt(self, boxes: List[Tensor], labels: List[Tensor],
                     batch_img_metas: List[dict]
                     ) -> Tuple[List[Tensor], List[Tensor], List[Optional[Tensor]]]:
        """Check labels, clip boxes to their image, drop boxes without area.

        * A label outside [0, K) would silently train against the wrong class
          (or no-object): stop with the image and the config key at fault.
        * Boxes partly outside the image are clipped (their normalised
          targets must lie in [0, 1], the range of the sigmoid); zero-area,
          inverted, non-finite or wholly outside boxes cannot be learned and
          are dropped with a warning naming the image.

        One host sync when everything is fine.

        Args:
            boxes (list[Tensor]): B tensors [M_b, 4] xyxy in pixels.
            labels (list[Tensor]): B tensors [M_b].
            batch_img_metas (list[dict]): ``img_shape`` (and ``img_path``).

        Returns:
            tuple[list]: clipped boxes, their labels, and per image None (all
            kept) or the bool [M_b] of kept boxes.
        """
        clipped, keeps = [], []
        for b, meta in zip(boxes, batch_img_metas):
            size = image_scale(meta['img_shape'], b)
            c = torch.minimum(b.clamp(min=0), size)
            clipped.append(c)
            keeps.append(((c[:, 2] > c[:, 0]) & (c[:, 3] > c[:, 1])) & b.isfinite().all(1))
        if not keeps:
            return clipped, labels, [None] * len(labels)
        all_labels = torch.cat(labels)
        labels_ok, boxes_ok = torch.stack([
            ((all_labels >= 0) & (all_labels < self.num_classes)).all(),
            torch.cat(keeps).all()]).tolist()
        if not labels_ok:
            for i, l in enumerate(labels):
                bad = l[(l < 0) | (l >= self.num_classes)]
                if bad.numel():
                    path = batch_img_metas[i].get('img_path', f'image {i} of the batch')
                    raise ValueError(
                        f'ground-truth label {int(bad[0])} in {path} is outside '
                        f'[0, {self.num_classes}): model.bbox_head.num_classes='
                        f'{self.num_classes} does not match the data set\'s classes '
                        '(set num_classes to the number of classes in dataset metainfo)')
        if boxes_ok:
            return clipped, labels, [None] * len(labels)
        for i, keep in enumerate(keeps):
            dropped = int((~keep).sum())
            if dropped:
                path = batch_img_metas[i].get('img_path', f'image {i} of the batch')
                print_log(f'{path}: {dropped} ground-truth box(es) with no area inside the '
                          f'image (zero-area, inverted or outside) ignored',
                          logger='current', level=logging.WARNING)
        return ([c[k] for c, k in zip(clipped, keeps)], [l[k] for l, k in zip(labels, keeps)],
                keeps)

    # ------------------------------------------------------------------ #
    def predict(self, hidden_states: Tensor, batch_data_samples: SampleList,
                rescale: bool = True, references: Optional[Tensor] = None) -> InstanceList:
        """Predict from the last decoder layer only."""
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        cls_scores, bbox_preds = self(hidden_states[-1:], references)
        return self.predict_by_feat(cls_scores, bbox_preds, batch_img_metas, rescale)

    def loss_and_predict(self, hidden_states: Tensor,
                         batch_data_samples: SampleList) -> Tuple[dict, InstanceList]:
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        outs = self(hidden_states)
        losses = self.loss_by_feat(*outs, batch_gt_instances, batch_img_metas)
        return losses, self.predict_by_feat(*outs, batch_img_metas)

    def predict_by_feat(self, layer_cls_scores: Tensor, layer_bbox_preds: Tensor,
                        batch_img_metas: List[dict], rescale: bool = True) -> InstanceList:
        """Keep the top ``max_per_img`` queries of each image by class score.

        Args:
            layer_cls_scores (Tensor): [L, B, N, K + 1]; the last layer is used.
            layer_bbox_preds (Tensor): [L, B, N, 4] normalised cxcywh.
            batch_img_metas (list[dict]): ``img_shape`` and, for ``rescale``,
                ``scale_factor`` (w, h); a missing ``scale_factor`` means the
                image was not resized.
            rescale (bool): boxes in the original image's pixels. Defaults to True.

        Returns:
            list[InstanceData]: per image ``bboxes`` [k, 4] xyxy, ``scores``
            [k], ``labels`` [k], by descending score, and ``query_inds`` [k]
            (which query made each prediction); no NMS (set prediction).
        """
        cls_scores, bbox_preds = layer_cls_scores[-1], layer_bbox_preds[-1]  # [B, N, *]
        num_queries = cls_scores.shape[1]
        max_per_img = min(self.test_cfg.get('max_per_img', num_queries), num_queries)
        if self.use_sigmoid_cls:
            probs = cls_scores[..., :self.num_classes].sigmoid()
        else:
            probs = cls_scores.softmax(-1)[..., :-1]
        scores, labels = probs.max(-1)  # [B, N]
        scores, keep = scores.topk(max_per_img, dim=1)  # [B, k]
        labels = labels.gather(1, keep)
        boxes = box_cxcywh_to_xyxy(bbox_preds.gather(1, keep[..., None].expand(-1, -1, 4)))
        results = []
        for b, meta in enumerate(batch_img_metas):
            size = image_scale(meta['img_shape'], boxes)
            det = torch.minimum((boxes[b] * size).clamp(min=0), size)
            if rescale:
                scale_factor = meta.get('scale_factor', (1., 1.))
                det = det / det.new_tensor(scale_factor).repeat(2)
            results.append(InstanceData(bboxes=det, scores=scores[b], labels=labels[b],
                                        query_inds=keep[b]))
        return results

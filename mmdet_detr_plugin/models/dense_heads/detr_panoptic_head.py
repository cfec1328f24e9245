"""DETR's panoptic head (DETR paper, section 4.4): the box head, plus an
attention-map module and a mask head on the last decoder layer, a mask
loss on the matched queries and the pixel-wise panoptic merge."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, reduce_mean
from ...structures.box_ops import box_cxcywh_to_xyxy, image_scale
from ...structures.panoptic import box_mask_logits, merge_panoptic
from .detr_head import PluginDETRHead

# model.test_cfg.panoptic: the merge's settings
PANOPTIC_DEFAULTS = dict(
    score_thr=0.85,        # queries kept for the merge: best class score above it
    min_segment_area=4,    # segments of this many pixels or fewer are dropped (repeatedly)
    mask_thr=0.5,          # instance masks (pred_instances.masks): mask probability above it
    masks='predicted',     # 'predicted', or 'boxes': fill each kept box (the baseline)
)


@MODELS.register_module()
class PluginDETRPanopticHead(PluginDETRHead):
    """``PluginDETRHead`` over things and stuff, with DETR's mask head.

    Training: the set loss as ``PluginDETRHead`` (unless the detector is
    frozen), and on the last decoder layer's matches, for each matched query,
    the mask predicted at stride 4 and upsampled (bilinear) to the padded
    input size against its ground-truth mask: the sigmoid focal loss
    (alpha 0.25, gamma 2), averaged over pixels, and the DICE loss (with 1
    added to numerator and denominator), each summed over masks and divided
    by the number of boxes (averaged over processes). These are mmdet's
    ``FocalLoss`` (``avg_factor`` = boxes x pixels) and ``DiceLoss``
    (``naive_dice=True``, ``eps=1``), which compute exactly the reference's
    ``sigmoid_focal_loss`` and ``dice_loss``. The mask head runs for the
    matched queries only (it is independent per query, so the result equals
    running it for all and selecting).

    Inference (``model.test_cfg``): ``pred_instances`` are the top
    ``max_per_img`` queries of thing classes with their boxes and binary
    masks (for mmdet's ``CocoMetric(metric=['bbox', 'segm'])``);
    ``pred_panoptic_seg.sem_seg`` [1, H, W] is the merge
    (``structures.panoptic.merge_panoptic``) of the queries whose best class
    score exceeds ``panoptic.score_thr`` (for mmdet's ``CocoPanopticMetric``).

    Args:
        num_classes (int): things + stuff K.
        num_things_classes (int): the first ``num_things_classes`` labels
            are things.
        attention_map (dict): ``PluginMHAttentionMap`` config; ``embed_dims``
            filled in. Defaults to 8 heads.
        mask_head (dict): ``PluginMaskHead`` config; ``embed_dims`` and
            ``num_heads`` filled in; ``in_channels`` are the finer backbone
            levels, coarse to fine. Defaults to ResNet-50's (1024, 512, 256).
        loss_mask (dict): Defaults to mmdet's ``FocalLoss`` as above.
        loss_dice (dict): Defaults to mmdet's ``DiceLoss`` as above.
        test_cfg (dict): ``max_per_img`` and ``panoptic`` (keys of
            :data:`PANOPTIC_DEFAULTS`).
        **kwargs: ``PluginDETRHead``'s (``embed_dims``, ``criterion``,
            ``train_cfg``, ...).
    """

    def __init__(self, num_classes: int, num_things_classes: int,
                 attention_map: ConfigType = dict(type='PluginMHAttentionMap'),
                 mask_head: ConfigType = dict(type='PluginMaskHead'),
                 loss_mask: ConfigType = dict(type='FocalLoss', use_sigmoid=True, alpha=0.25,
                                              gamma=2.0, reduction='mean', loss_weight=1.0),
                 loss_dice: ConfigType = dict(type='DiceLoss', use_sigmoid=True, activate=True,
                                              naive_dice=True, eps=1.0, reduction='mean',
                                              loss_weight=1.0),
                 test_cfg: Optional[dict] = dict(max_per_img=100), **kwargs) -> None:
        super().__init__(num_classes=num_classes, test_cfg=test_cfg, **kwargs)
        if not isinstance(num_things_classes, int) or not 0 <= num_things_classes <= num_classes:
            raise ValueError(f'model.bbox_head.num_things_classes must be an int in [0, '
                             f'num_classes={num_classes}], got {num_things_classes!r}')
        self.num_things_classes = num_things_classes
        attention_map = dict(attention_map)
        attention_map.setdefault('type', 'PluginMHAttentionMap')
        attention_map['embed_dims'] = self.embed_dims
        self.attention_map = MODELS.build(attention_map)
        mask_head = dict(mask_head)
        mask_head.setdefault('type', 'PluginMaskHead')
        mask_head.update(embed_dims=self.embed_dims, num_heads=self.attention_map.num_heads)
        self.mask_head = MODELS.build(mask_head)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        panoptic = dict(self.test_cfg.get('panoptic', {}))
        unknown = sorted(set(panoptic) - set(PANOPTIC_DEFAULTS))
        if unknown:
            raise KeyError(f'model.test_cfg.panoptic has unknown keys {unknown}; '
                           f'known: {sorted(PANOPTIC_DEFAULTS)}')
        self.panoptic_cfg = dict(PANOPTIC_DEFAULTS, **panoptic)
        if self.panoptic_cfg['masks'] not in ('predicted', 'boxes'):
            raise ValueError("model.test_cfg.panoptic.masks must be 'predicted' or 'boxes', "
                             f"got {self.panoptic_cfg['masks']!r}")

    # ------------------------------------------------------------------ #
    def forward(self, hidden_states: Tensor, references: Optional[Tensor] = None,
                mask_inputs: Optional[dict] = None) -> Tuple[Tensor, ...]:
        """Logits [L, B, N, K + 1] and boxes [L, B, N, 4] as ``PluginDETRHead``,
        and with ``mask_inputs`` the mask logits of every query of the last
        layer, [B, N, h_f, w_f] (stride of the finest backbone level)."""
        cls_scores, bbox_preds = super().forward(hidden_states, references)
        if mask_inputs is None:
            return cls_scores, bbox_preds
        batch_size, num_queries = hidden_states.shape[1:3]
        batch_inds = torch.arange(batch_size, device=hidden_states.device)
        batch_inds = batch_inds.repeat_interleave(num_queries)
        query_inds = torch.arange(num_queries, device=hidden_states.device).repeat(batch_size)
        masks = self.predict_masks(hidden_states[-1], mask_inputs, batch_inds, query_inds)
        return cls_scores, bbox_preds, masks.view(batch_size, num_queries, *masks.shape[-2:])

    def predict_masks(self, queries: Tensor, mask_inputs: dict, batch_inds: Tensor,
                      query_inds: Tensor) -> Tensor:
        """Mask logits of selected queries.

        Args:
            queries (Tensor): [B, Q, d], the last decoder layer's outputs.
            mask_inputs (dict): from ``PluginDETRPanoptic``: ``memory`` [B,
                h*w, d], ``memory_mask`` [B, h*w] or None, ``feat`` [B, d, h,
                w] (the input projection), ``fpn_feats`` (finer backbone
                levels, coarse to fine).
            batch_inds, query_inds (Tensor): [K] long, the selected queries.

        Returns:
            Tensor: [K, h_f, w_f] mask logits.
        """
        feat = mask_inputs['feat']
        attention = self.attention_map(queries, mask_inputs['memory'],
                                       mask_inputs['memory_mask'], feat.shape[-2:])
        return self.mask_head(feat, attention[batch_inds, query_inds], mask_inputs['fpn_feats'],
                              batch_inds)

    # ------------------------------------------------------------------ #
    def loss(self, hidden_states: Tensor, batch_data_samples: SampleList,
             num_query_groups: int = 1, references: Optional[Tensor] = None,
             mask_inputs: Optional[dict] = None,
             boxes_frozen: bool = False) -> Dict[str, Tensor]:
        """Box losses (all layers; none when ``boxes_frozen``) and the mask
        losses ``loss_mask``, ``loss_dice`` (last layer).

        With query groups, each group is matched on its own (as in
        ``PluginDETRHead.loss``) and each group's matched queries get masks.
        """
        if mask_inputs is None:
            raise ValueError('PluginDETRPanopticHead needs mask_inputs (use it inside '
                             'PluginDETRPanoptic)')
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        for gt, meta in zip(batch_gt_instances, batch_img_metas):
            if 'masks' not in gt or len(gt.masks) != len(gt.labels):
                raise ValueError(
                    f'{meta.get("img_path", "an image")}: PluginDETRPanopticHead needs one '
                    'ground-truth mask per box (gt_instances.masks); load the data with '
                    'PluginLoadPanopticAnnotations (things and stuff as instances)')
        layers = slice(-1, None) if boxes_frozen else slice(None)
        cls_scores, bbox_preds = PluginDETRHead.forward(self, hidden_states[layers], references)
        groups = num_query_groups
        num_layers, batch_size, num_all = cls_scores.shape[:3]
        num_queries = num_all // groups
        if groups > 1:
            shape = (num_layers, batch_size * groups, num_queries)
            cls_scores = cls_scores.reshape(*shape, -1)
            bbox_preds = bbox_preds.reshape(*shape, 4)
            batch_gt_instances = [gt for gt in batch_gt_instances for _ in range(groups)]
            batch_img_metas = [m for m in batch_img_metas for _ in range(groups)]
        if not self.criterion.aux_loss:
            cls_scores, bbox_preds = cls_scores[-1:], bbox_preds[-1:]
        targets, keeps = self.match(cls_scores, bbox_preds, batch_gt_instances,
                                    batch_img_metas, return_keeps=True)
        losses = {} if boxes_frozen else self.criterion(cls_scores, bbox_preds, **targets)

        # the last layer's matches: (image * group) b' -> image b' // G, query (b' % G) * N + q
        batch_inds, query_inds, gt_masks = [], [], []
        pad_h, pad_w = batch_data_samples[0].batch_input_shape
        for b, ((q, g), gt, keep) in enumerate(zip(targets['matches'], batch_gt_instances,
                                                   keeps)):
            q, g = q[-1], g[-1]
            batch_inds.append(torch.full_like(q, b // groups))
            query_inds.append(q + (b % groups) * num_queries)
            masks = gt.masks.to_tensor(dtype=torch.float32, device=q.device)
            if keep is not None:
                masks = masks[keep]
            masks = F.pad(masks, (0, pad_w - masks.shape[-1], 0, pad_h - masks.shape[-2]))
            gt_masks.append(masks[g])
        batch_inds, query_inds = torch.cat(batch_inds), torch.cat(query_inds)
        losses.update(self.mask_losses(hidden_states[-1], mask_inputs, batch_inds, query_inds,
                                       torch.cat(gt_masks)))
        return losses

    def mask_losses(self, queries: Tensor, mask_inputs: dict, batch_inds: Tensor,
                    query_inds: Tensor, gt_masks: Tensor) -> Dict[str, Tensor]:
        """Focal and DICE losses of K matched queries.

        Args:
            queries (Tensor): [B, Q, d].
            mask_inputs (dict): see :meth:`predict_masks`.
            batch_inds, query_inds (Tensor): [K] long.
            gt_masks (Tensor): [K, H, W] 0/1, the padded input size.

        Returns:
            dict: ``loss_mask``, ``loss_dice``.
        """
        num_masks = reduce_mean(queries.new_tensor(float(len(gt_masks)))).clamp(min=1)
        if len(gt_masks) == 0:  # keep every mask parameter in the graph (DDP)
            zero = sum(p.sum() for p in self.mask_parameters()) * 0
            return dict(loss_mask=zero, loss_dice=zero)
        logits = self.predict_masks(queries, mask_inputs, batch_inds, query_inds)
        logits = F.interpolate(logits[:, None].float(), size=gt_masks.shape[-2:],
                               mode='bilinear', align_corners=False)[:, 0].flatten(1)
        targets = gt_masks.flatten(1)
        return dict(
            loss_mask=self.loss_mask(logits, targets, avg_factor=num_masks * logits.shape[1]),
            loss_dice=self.loss_dice(logits, targets, avg_factor=num_masks))

    def mask_parameters(self):
        """The parameters of the attention maps and the mask head."""
        yield from self.attention_map.parameters()
        yield from self.mask_head.parameters()

    # ------------------------------------------------------------------ #
    def predict(self, hidden_states: Tensor, batch_data_samples: SampleList,
                rescale: bool = True, references: Optional[Tensor] = None,
                mask_inputs: Optional[dict] = None) -> List[Tuple[InstanceData, PixelData]]:
        """Per image: thing instances with masks, and the panoptic map.

        Returns:
            list[tuple]: ``(pred_instances, pred_panoptic_seg)``: instances
            with ``bboxes`` [k, 4] xyxy, ``scores``, ``labels`` (things
            only), ``masks`` [k, H, W] bool and ``query_inds``; the map
            ``sem_seg`` [1, H, W] int32 (mmdet's panoptic ids), H, W the
            original size with ``rescale`` (else the resized image's).
        """
        if mask_inputs is None:
            raise ValueError('PluginDETRPanopticHead needs mask_inputs (use it inside '
                             'PluginDETRPanoptic)')
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        cls_scores, bbox_preds = PluginDETRHead.forward(self, hidden_states[-1:], references)
        detections = self.predict_by_feat(cls_scores, bbox_preds, batch_img_metas, rescale)
        probs = (cls_scores[-1, ..., :self.num_classes].sigmoid() if self.use_sigmoid_cls
                 else cls_scores[-1].softmax(-1)[..., :-1])
        scores, labels = probs.max(-1)  # [B, N]
        pad_shape = batch_data_samples[0].batch_input_shape
        results = []
        for b, (det, meta) in enumerate(zip(detections, batch_img_metas)):
            things = det[det.labels < self.num_things_classes]
            kept = (scores[b] > self.panoptic_cfg['score_thr']).nonzero()[:, 0]
            needed, where = torch.cat([kept, things.query_inds]).unique(return_inverse=True)
            img_h, img_w = meta['img_shape'][:2]
            out_size = tuple(meta['ori_shape'][:2]) if rescale else (img_h, img_w)
            logits = self.predict_masks(hidden_states[-1], mask_inputs,
                                        torch.full_like(needed, b), needed)
            logits = F.interpolate(logits[:, None].float(), size=tuple(pad_shape),
                                   mode='bilinear', align_corners=False)[:, 0, :img_h, :img_w]
            kept_logits = logits[where[:len(kept)]]
            if self.panoptic_cfg['masks'] == 'boxes':
                boxes = box_cxcywh_to_xyxy(bbox_preds[-1, b, kept].float())
                kept_logits = box_mask_logits(boxes * image_scale((img_h, img_w), boxes),
                                              (img_h, img_w))
            pan, _ = merge_panoptic(scores[b, kept], labels[b, kept], kept_logits,
                                    self.num_things_classes, self.num_classes, out_size,
                                    self.panoptic_cfg['min_segment_area'])
            thing_logits = logits[where[len(kept):]]
            if tuple(thing_logits.shape[-2:]) != out_size:
                thing_logits = F.interpolate(thing_logits[:, None], size=out_size,
                                             mode='bilinear', align_corners=False)[:, 0]
            things.masks = thing_logits.sigmoid() > self.panoptic_cfg['mask_thr']
            results.append((things, PixelData(sem_seg=pan[None])))
        return results

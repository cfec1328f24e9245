"""Denoising training (DN-DETR, Li et al. 2022), as a query scheme.

In training, ``PluginDenoisingQueries`` puts G groups of *denoising queries*
in front of a matching scheme's queries. Each group holds one query per
ground-truth box of the image (padded to the batch's largest count M):

* content: a learned embedding of the box's label, flipped to a random class
  with probability ``label_noise`` (0.2), plus a learned "denoising"
  indicator (the matching queries get the "matching" one);
* position: the query the matching scheme would make for the box after
  noise (``box_queries``): its centre shifted by up to ``box_noise`` (0.4)
  times half its width / height, its sides scaled by up to +-``box_noise``.
  For DETR's plain queries, which carry no box, the scheme's own MLP of the
  box's sine encoding;
* attention (``denoising_attention_mask``): matching queries do not see the
  denoising ones (they would read the answer), denoising groups do not see
  each other; denoising queries see the matching queries. The padding slots
  of images with fewer than M boxes are queries like the others (no loss),
  visible within their group, as in DN-DETR and mmdet's DINO; with
  ``hide_padding=True`` no query sees them (the mask is then one per image,
  [B, D + Q, D + Q]) and an image's denoising does not depend on the rest
  of its batch.

The denoising queries' target is the box they were made from, so they need
no matching: the head computes ``dn_loss_cls``, ``dn_loss_bbox`` and
``dn_loss_iou`` on every decoder layer against the clean boxes. Test time is
DETR's: no denoising query exists.

This is DN-DETR's non-contrastive form, for plain DETR decoders. mmdet's
``CdnQueryGenerator`` is DINO's contrastive form (each group also holds
negatives, noised further, which must predict "no object"; groups sized
to a fixed query budget; 4-D boxes only, with DINO's deformable decoder).
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from mmdet.utils import ConfigType, OptMultiConfig
from ...structures.box_ops import box_xyxy_to_cxcywh, image_scale
from .queries import group_attention_mask


def noise_labels(labels: Tensor, prob: float, num_classes: int,
                 generator: Optional[torch.Generator] = None) -> Tensor:
    """Each label replaced, with probability ``prob``, by a class drawn
    uniformly from [0, num_classes) (which may be its own): [...] -> [...]."""
    flip = torch.rand(labels.shape, device=labels.device, generator=generator) < prob
    random = torch.randint(0, num_classes, labels.shape, device=labels.device,
                           generator=generator)
    return torch.where(flip, random, labels)


def noise_boxes(boxes: Tensor, scale: float,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """DN-DETR's box noise on normalised cxcywh boxes [..., 4]: the centre
    moves by up to ``scale * (w / 2, h / 2)``, the sides change by up to
    ``scale * (w, h)``, each uniformly; the result is clamped to [0, 1]."""
    sides = boxes[..., 2:]
    spread = torch.cat((sides / 2, sides), dim=-1) * scale  # [..., 4]
    uniform = torch.rand(boxes.shape, device=boxes.device, dtype=boxes.dtype,
                         generator=generator) * 2 - 1
    return (boxes + uniform * spread).clamp(0, 1)


def denoising_attention_mask(num_dn_groups: int, max_gts: int, num_matching: int,
                             matching_mask: Optional[Tensor],
                             device: torch.device) -> Tensor:
    """[D + Q, D + Q] bool, True where query i may not attend to query j;
    the D = G * M denoising queries come first.

    Args:
        num_dn_groups (int): G.
        max_gts (int): M, queries per denoising group.
        num_matching (int): Q matching queries.
        matching_mask (Tensor, optional): [Q, Q] the matching scheme's own
            mask (query groups), or None.

    Example:
        >>> denoising_attention_mask(2, 1, 2, None, 'cpu').int()
        tensor([[0, 1, 0, 0],
                [1, 0, 0, 0],
                [1, 1, 0, 0],
                [1, 1, 0, 0]], dtype=torch.int32)
    """
    num_dn = num_dn_groups * max_gts
    mask = torch.zeros(num_dn + num_matching, num_dn + num_matching, dtype=torch.bool,
                       device=device)
    mask[num_dn:, :num_dn] = True  # matching queries do not see the answers
    if num_dn:
        mask[:num_dn, :num_dn] = group_attention_mask(num_dn_groups, max_gts, device)
    if matching_mask is not None:
        mask[num_dn:, num_dn:] = matching_mask
    return mask


def padded_targets(batch_data_samples: List, num_classes: int,
                   device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """The batch's ground truth, padded to its largest box count M.

    Boxes are clipped to their image and normalised by ``img_shape``, as the
    head does; boxes it would drop (no area, not finite) and labels outside
    [0, K) are marked invalid (the head's check reports the latter).

    Returns:
        tuple[Tensor]: ``labels`` [B, M] long, ``boxes`` [B, M, 4] normalised
        cxcywh, ``valid`` [B, M] bool.
    """
    gts = [s.gt_instances for s in batch_data_samples]
    max_gts = max((len(gt) for gt in gts), default=0)
    batch_size = len(gts)
    labels = torch.zeros(batch_size, max_gts, dtype=torch.long, device=device)
    boxes = torch.zeros(batch_size, max_gts, 4, device=device)
    valid = torch.zeros(batch_size, max_gts, dtype=torch.bool, device=device)
    for b, (gt, sample) in enumerate(zip(gts, batch_data_samples)):
        count = len(gt)
        if not count:
            continue
        xyxy = gt.bboxes.to(device).float()
        size = image_scale(sample.metainfo['img_shape'], xyxy)
        clipped = torch.minimum(xyxy.clamp(min=0), size)
        lab = gt.labels.to(device).long()
        ok = ((clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
              & xyxy.isfinite().all(1) & (lab >= 0) & (lab < num_classes))
        labels[b, :count] = torch.where(ok, lab, torch.zeros_like(lab))
        boxes[b, :count] = box_xyxy_to_cxcywh(clipped / size).nan_to_num(0.)
        valid[b, :count] = ok
    return labels, boxes, valid


@MODELS.register_module()
class PluginDenoisingQueries(BaseModule):
    """Denoising queries in front of a matching query scheme (module
    docstring).

    Training returns the matching scheme's decoder and head inputs extended
    by the denoising queries, the combined ``self_attn_mask`` ([D + Q, D + Q],
    or [B, D + Q, D + Q] with ``hide_padding`` when some image has padding
    slots) and, for the
    head, ``denoising``: ``num_queries`` (D, the leading denoising queries),
    ``num_groups`` (G), ``labels`` [B, M] and ``boxes`` [B, M, 4] (the clean
    targets, normalised cxcywh) and ``valid`` [B, M]. A batch without boxes
    gets no denoising query (D = 0). Evaluation returns the matching
    scheme's inputs untouched.

    Args:
        queries (dict): the matching scheme (``PluginDETRQueries``,
            ``PluginAnchorPointQueries``, ``PluginAnchorBoxQueries``);
            ``num_queries`` and ``embed_dims`` are filled in.
        num_classes (int): K. ``PluginDETR`` fills it in from
            ``bbox_head.num_classes``.
        num_queries (int): N. ``PluginDETR`` fills it in.
        embed_dims (int): d. ``PluginDETR`` fills it in.
        num_dn_groups (int): G denoising groups. Defaults to 5 (DN-DETR).
        label_noise (float): probability of a label flip. Defaults to 0.2.
        box_noise (float): box noise scale (``noise_boxes``). Defaults to 0.4.
        hide_padding (bool): no query attends to padding slots (module
            docstring). Defaults to False (DN-DETR).
        init_cfg (dict, optional): Defaults to None.
    """

    needs_num_classes = True

    def __init__(self, queries: ConfigType, num_classes: int, num_queries: int = 100,
                 embed_dims: int = 256, num_dn_groups: int = 5, label_noise: float = 0.2,
                 box_noise: float = 0.4, hide_padding: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(num_dn_groups, int) or num_dn_groups < 1:
            raise ValueError(f'model.queries.num_dn_groups must be a positive int, '
                             f'got {num_dn_groups!r}')
        if not 0 <= label_noise <= 1:
            raise ValueError(f'model.queries.label_noise must be in [0, 1], got {label_noise!r}')
        if not box_noise >= 0:
            raise ValueError(f'model.queries.box_noise must be >= 0, got {box_noise!r}')
        if not isinstance(queries, dict) or 'type' not in queries:
            raise ValueError('model.queries.queries must be the matching scheme\'s config, '
                             "e.g. dict(type='PluginAnchorPointQueries', num_groups=6)")
        matching = dict(queries, num_queries=num_queries, embed_dims=embed_dims)
        self.matching = MODELS.build(matching)
        if not getattr(self.matching, 'takes_denoising', False):
            raise ValueError(f'model.queries.queries ({queries["type"]}) cannot take '
                             'denoising queries: use PluginDETRQueries, '
                             'PluginAnchorPointQueries or PluginAnchorBoxQueries')
        self.num_classes = num_classes
        self.num_dn_groups = num_dn_groups
        self.label_noise = label_noise
        self.box_noise = box_noise
        self.hide_padding = hide_padding
        self.label_embedding = nn.Embedding(num_classes, embed_dims)
        self.indicator = nn.Embedding(2, embed_dims)  # row 0: matching, row 1: denoising
        if self.matching.box_queries is None:
            # DETR's queries carry no box: an MLP of the box's sine encoding
            self.box_encoding = MODELS.build(dict(type='PluginSinePositionalEncoding',
                                                  num_feats=embed_dims // 2))
            self.box_mlp = nn.Sequential(nn.Linear(2 * embed_dims, embed_dims),
                                         nn.ReLU(inplace=True),
                                         nn.Linear(embed_dims, embed_dims))

    @property
    def num_queries(self) -> int:
        return self.matching.num_queries

    @property
    def num_groups(self) -> int:
        return self.matching.num_groups

    @property
    def embed_dims(self) -> int:
        return self.matching.embed_dims

    @property
    def takes_proposals(self) -> bool:
        return getattr(self.matching, 'takes_proposals', False)

    def box_queries(self, boxes: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """Denoising queries' positions (and references) for boxes
        [B, M, 4] normalised cxcywh."""
        if self.matching.box_queries is not None:
            return self.matching.box_queries(boxes)
        encoded = torch.cat((self.box_encoding.encode_points(boxes[..., :2]),
                             self.box_encoding.encode_points(boxes[..., 2:])), dim=-1)
        return self.box_mlp(encoded.to(boxes.dtype)), None

    def forward(self, memory: Tensor, batch_data_samples: OptSampleList = None,
                **kwargs) -> Tuple[Dict, Dict]:
        """Queries for a batch: the matching scheme's, and in training the
        denoising ones in front (class docstring)."""
        decoder_inputs, head_inputs = self.matching(memory, batch_data_samples, **kwargs)
        query = decoder_inputs['query']
        decoder_inputs['query'] = query + self.indicator.weight[0].to(query.dtype)
        if not self.training:
            return decoder_inputs, head_inputs
        if batch_data_samples is None:
            raise ValueError('PluginDenoisingQueries needs the batch\'s ground truth in training')
        labels, boxes, valid = padded_targets(batch_data_samples, self.num_classes,
                                              memory.device)
        max_gts = labels.shape[1]
        groups = self.num_dn_groups
        noisy_labels = noise_labels(labels.repeat(1, groups), self.label_noise,
                                    self.num_classes)  # [B, G * M], group g: g*M ... g*M+M-1
        noisy_boxes = noise_boxes(boxes.repeat(1, groups, 1), self.box_noise)
        content = self.label_embedding(noisy_labels) + self.indicator.weight[1]
        pos, refs = self.box_queries(noisy_boxes)
        if max_gts == 0:
            # no denoising query: keep every parameter in the graph (DDP)
            unused = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.
            decoder_inputs['query'] = decoder_inputs['query'] + unused.to(query.dtype)
        num_matching = query.shape[1]
        mask = denoising_attention_mask(groups, max_gts, num_matching,
                                        decoder_inputs.get('self_attn_mask'), memory.device)
        if self.hide_padding and not bool(valid.all()):
            # padding slots (and boxes the head drops) are seen by no query, so that
            # an image's denoising does not depend on the rest of its batch
            hidden = torch.cat((~valid.repeat(1, groups),
                                valid.new_zeros(valid.shape[0], num_matching)), 1)  # [B, D + Q]
            mask = mask[None] | hidden[:, None, :]  # [B, D + Q, D + Q]
        decoder_inputs['self_attn_mask'] = mask
        decoder_inputs['query'] = torch.cat((content.to(query.dtype), decoder_inputs['query']), 1)
        decoder_inputs['query_pos'] = torch.cat(
            (pos.to(query.dtype), decoder_inputs['query_pos']), 1)
        if 'references' in head_inputs:
            head_inputs['references'] = torch.cat(
                (refs.to(head_inputs['references'].dtype), head_inputs['references']), 1)
        head_inputs['denoising'] = dict(num_queries=groups * max_gts, num_groups=groups,
                                        labels=labels, boxes=boxes, valid=valid)
        return decoder_inputs, head_inputs

    def extra_repr(self) -> str:
        return (f'num_dn_groups={self.num_dn_groups}, label_noise={self.label_noise}, '
                f'box_noise={self.box_noise}, hide_padding={self.hide_padding}')

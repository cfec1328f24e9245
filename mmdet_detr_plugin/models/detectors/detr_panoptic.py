"""DETR for panoptic segmentation (DETR paper, section 4.4)."""
from typing import Dict, Tuple

import torch
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from .detr import PluginDETR

# the parts trained in the second stage of the reference recipe
MASK_PREFIXES = ('bbox_head.attention_map.', 'bbox_head.mask_head.')


@MODELS.register_module()
class PluginDETRPanoptic(PluginDETR):
    """``PluginDETR`` whose head also predicts one mask per query, merged
    into a panoptic segmentation (things and stuff predicted alike).

    The backbone gives its finer levels too (e.g. ResNet
    ``out_indices=(0, 1, 2, 3)``): the neck projects the last, the mask head
    (``PluginDETRPanopticHead``) reads the others. Predictions carry
    ``pred_panoptic_seg`` (mmdet's ``CocoPanopticMetric``) and
    ``pred_instances`` with ``masks`` for the thing classes (mmdet's
    ``CocoMetric`` with ``'segm'``).

    Args:
        freeze_detector (bool): the reference's second stage: everything but
            the attention maps and the mask head is fixed (no gradients, in
            eval mode, run without autograd); only the mask losses are
            computed. Start from a box detector trained on the same classes
            (``load_from``: a ``PluginDETR`` checkpoint loads, its mask head
            starting afresh). Defaults to False (boxes and masks trained
            together).
        **kwargs: ``PluginDETR``'s (``bbox_head`` a ``PluginDETRPanopticHead``).
    """

    def __init__(self, *args, freeze_detector: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.encoder_head is not None:
            raise ValueError('model.encoder_head is not used by PluginDETRPanoptic (its loss '
                             'is the panoptic head\'s): drop it, or train the boxes with '
                             'PluginDETR first and load that checkpoint')
        if not hasattr(self.bbox_head, 'mask_head'):
            raise ValueError(f'model.bbox_head must predict masks (PluginDETRPanopticHead), '
                             f'got {type(self.bbox_head).__name__}')
        levels = len(self.bbox_head.mask_head.in_channels)
        out_indices = getattr(self.backbone, 'out_indices', None)
        if out_indices is not None and len(out_indices) != levels + 1:
            raise ValueError(
                f'model.backbone.out_indices={tuple(out_indices)} gives {len(out_indices)} '
                f'levels; the mask head needs {levels} finer levels and the last (e.g. '
                f'out_indices={tuple(range(levels + 1))} with '
                f'mask_head.in_channels={self.bbox_head.mask_head.in_channels})')
        self.freeze_detector = freeze_detector
        if freeze_detector:
            for name, param in self.named_parameters():
                if not name.startswith(MASK_PREFIXES):
                    param.requires_grad_(False)

    def train(self, mode: bool = True) -> 'PluginDETRPanoptic':
        super().train(mode)
        if self.freeze_detector and mode:
            for name, child in self.named_children():
                if name != 'bbox_head':
                    child.eval()
        return self

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """-> the backbone's finer levels (fine to coarse, e.g. C2, C3, C4)
        and, last, the neck's projection of the last level [B, d, h, w]."""
        feats = self.backbone(batch_inputs)
        return tuple(feats[:-1]) + tuple(self.neck(feats[-1:]))

    def forward_transformer(self, img_feats: Tuple[Tensor],
                            batch_data_samples: OptSampleList = None) -> Dict:
        """``PluginDETR``'s, and the head's ``mask_inputs``: the encoder
        ``memory`` [B, h*w, d] with its ``memory_mask``, the projection
        ``feat`` [B, d, h, w] and ``fpn_feats`` (coarse to fine)."""
        encoder_inputs, decoder_inputs = self.pre_transformer(img_feats, batch_data_samples)
        memory = self.forward_encoder(**encoder_inputs)['memory']
        query_inputs, head_inputs = self.pre_decoder(memory, batch_data_samples)
        decoder_inputs.update(query_inputs)
        head_inputs.update(self.forward_decoder(**decoder_inputs))
        head_inputs['mask_inputs'] = dict(memory=memory, memory_mask=encoder_inputs['feat_mask'],
                                          feat=img_feats[-1], fpn_feats=img_feats[-2::-1])
        return head_inputs

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_detector):
            head_inputs = self.forward_transformer(self.extract_feat(batch_inputs),
                                                   batch_data_samples)
        return self.bbox_head.loss(**head_inputs, batch_data_samples=batch_data_samples,
                                   boxes_frozen=self.freeze_detector)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        head_inputs = self.forward_transformer(self.extract_feat(batch_inputs),
                                               batch_data_samples)
        results = self.bbox_head.predict(**head_inputs, rescale=rescale,
                                         batch_data_samples=batch_data_samples)
        for sample, (instances, panoptic) in zip(batch_data_samples, results):
            sample.pred_instances = instances
            sample.pred_panoptic_seg = panoptic
        return batch_data_samples

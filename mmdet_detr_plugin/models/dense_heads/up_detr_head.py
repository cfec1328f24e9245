"""UP-DETR's pre-training head (Dai et al. 2021, section 3): DETR's class and
box FFNs, plus ``feature_align``, an MLP that predicts each query's patch
feature for the reconstruction loss."""
from typing import Dict, Optional, Tuple

from torch import Tensor

from mmdet.models.layers.transformer.utils import MLP
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import InstanceList
from .detr_head import PluginDETRHead


@MODELS.register_module()
class PluginUPDETRHead(PluginDETRHead):
    """Patch localisation and feature reconstruction.

    The targets of an image are its M query patches: their boxes, all of
    class 0 ("patch"; the head has ``num_classes=1``, so 2 outputs: patch
    and no-object), and their pooled backbone features [M, C]. Matching and
    the box and class losses are DETR's; ``feature_align`` (d -> d -> C, the
    reference's 2-layer MLP) maps every decoder layer's output to a feature,
    and the criterion adds ``loss_feature`` on matched pairs (see
    ``PluginSetCriterion``).

    Args:
        num_classes (int): Defaults to 1 (patch).
        embed_dims (int): d. Defaults to 256.
        feature_channels (int): C, the patch features' channels (the
            backbone's last output: 2048 for ResNet-50). Defaults to 2048.
        **kwargs: the rest of :class:`PluginDETRHead`'s arguments.
    """

    def __init__(self, num_classes: int = 1, embed_dims: int = 256,
                 feature_channels: int = 2048, **kwargs) -> None:
        super().__init__(num_classes=num_classes, embed_dims=embed_dims, **kwargs)
        self.feature_channels = feature_channels
        self.feature_align = MLP(embed_dims, embed_dims, feature_channels, 2)

    def forward(self, hidden_states: Tensor, references: Optional[Tensor] = None,
                patch_features: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """DETR's outputs (``mode='tensor'``); the patch features are only
        targets of the loss."""
        return super().forward(hidden_states, references)

    def loss(self, hidden_states: Tensor, batch_data_samples: SampleList,
             patch_features: Optional[Tensor] = None, num_query_groups: int = 1,
             references: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Set loss with feature reconstruction.

        Args:
            hidden_states (Tensor): [L, B, N, d].
            batch_data_samples (list[DetDataSample]): ``gt_instances`` are the
                patch boxes, in the order of ``patch_features``.
            patch_features (Tensor): [B, M, C] pooled backbone features of the
                patches (targets: no gradient flows into them).

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_iou``,
            ``loss_feature`` and their ``d{i}.`` counterparts.
        """
        if patch_features is None:
            raise ValueError('PluginUPDETRHead needs patch_features (use it in PluginUPDETR)')
        if num_query_groups != 1:
            raise ValueError('PluginUPDETRHead does not take query groups')
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        cls_scores, bbox_preds = self(hidden_states, references)
        feature_preds = self.feature_align(hidden_states)  # [L, B, N, C]
        if not self.criterion.aux_loss:
            cls_scores, bbox_preds = cls_scores[-1:], bbox_preds[-1:]
            feature_preds = feature_preds[-1:]
        targets = self.match(cls_scores, bbox_preds, batch_gt_instances, batch_img_metas)
        for labels, gt, meta in zip(targets['gt_labels'], batch_gt_instances, batch_img_metas):
            if len(labels) != len(gt) or len(gt) != patch_features.shape[1]:
                raise ValueError(
                    f'{meta.get("img_path", "an image")}: {len(gt)} patch boxes ({len(labels)} '
                    f'with area) for {patch_features.shape[1]} patch features; every query '
                    'patch needs its box (PluginRandomQueryPatches makes both)')
        return self.criterion(cls_scores, bbox_preds, **targets, feature_preds=feature_preds,
                              feature_targets=list(patch_features.detach()))

    def loss_by_feat(self, *args, **kwargs) -> Dict[str, Tensor]:
        raise NotImplementedError('PluginUPDETRHead computes its loss in loss() (it needs the '
                                  'patch features)')

    def predict(self, hidden_states: Tensor, batch_data_samples: SampleList,
                rescale: bool = True, patch_features: Optional[Tensor] = None,
                references: Optional[Tensor] = None) -> InstanceList:
        """Boxes found for the patches, from the last decoder layer: the
        ``query_inds`` of each prediction tell its patch (query // (N / M))."""
        return super().predict(hidden_states, batch_data_samples, rescale, references)

    def loss_and_predict(self, *args, **kwargs):
        raise NotImplementedError('PluginUPDETRHead has no loss_and_predict')

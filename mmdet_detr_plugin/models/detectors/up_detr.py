"""UP-DETR (Dai et al. 2021): unsupervised pre-training of DETR's transformer
by random query patches."""
from typing import Dict, Tuple

import torch
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from mmdet.utils import ConfigType, OptConfigType
from .detr import PluginDETR


@MODELS.register_module()
class PluginUPDETR(PluginDETR):
    """DETR pre-trained to find random patches of unlabeled images.

    Each training image carries M patches cropped from it (``query_patches``
    [M, 3, P, P] uint8 in its data sample, in the image's channel order, and
    their boxes as ``gt_instances``; see ``PluginRandomQueryPatches`` and
    ``PluginPackQueryPatchInputs``). The patches go through the backbone,
    normalised as the images are, and are average-pooled to [B, M, C]; the
    query scheme (``PluginPatchQueries``) adds them to the object queries,
    and the head (``PluginUPDETRHead``) localises each patch and
    reconstructs its feature. Everything else is ``PluginDETR``'s, so a
    checkpoint of this model fine-tunes as a ``PluginDETR`` with the same
    transformer through ``load_from`` (the pre-training heads and the
    classifier are dropped, with a log line that lists them).

    Args:
        freeze_backbone (bool): keep the backbone fixed (no gradients, batch
            norm in eval mode, run without autograd), as the reference, which
            starts from a self-supervised ResNet-50 and gives it learning rate
            0. Defaults to True.
        queries (dict, optional): Defaults to ``PluginPatchQueries``; its
            ``feature_channels`` must be the backbone's last output channels.
        **kwargs: ``PluginDETR``'s arguments (``bbox_head`` typically
            ``PluginUPDETRHead``).
    """

    def __init__(self, backbone: ConfigType, queries: OptConfigType = None,
                 freeze_backbone: bool = True, **kwargs) -> None:
        self.freeze_backbone = freeze_backbone
        queries = dict(queries or {})
        queries.setdefault('type', 'PluginPatchQueries')
        super().__init__(backbone=backbone, queries=queries, **kwargs)
        if not hasattr(self.bbox_head, 'feature_align'):
            raise ValueError(f'model.bbox_head must reconstruct patch features (e.g. '
                             f'PluginUPDETRHead), got {type(self.bbox_head).__name__}')
        channels = (self.queries.feature_channels, self.bbox_head.feature_channels)
        if channels[0] != channels[1]:
            raise ValueError(f'model.queries.feature_channels ({channels[0]}) and '
                             f'model.bbox_head.feature_channels ({channels[1]}) differ: both '
                             'are the channels of the backbone\'s last output')

    def _init_layers(self) -> None:
        super()._init_layers()
        if self.freeze_backbone:
            for param in self.backbone.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> 'PluginUPDETR':
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def _backbone(self, images: Tensor) -> Tuple[Tensor, ...]:
        if self.freeze_backbone:
            with torch.no_grad():
                return self.backbone(images)
        return self.backbone(images)

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor]:
        feats = self._backbone(batch_inputs)
        return self.neck(feats) if self.with_neck else feats

    def patch_features(self, batch_data_samples: OptSampleList) -> Tensor:
        """Pooled backbone features of the query patches.

        Args:
            batch_data_samples (list[DetDataSample]): each with
                ``query_patches`` [M, 3, P, P] (uint8 or float, 0-255, the
                image's channel order).

        Returns:
            Tensor: [B, M, C], the average of the backbone's last output.
        """
        if batch_data_samples is None or not all('query_patches' in s
                                                 for s in batch_data_samples):
            raise ValueError('PluginUPDETR needs query_patches in every data sample: put '
                             'PluginRandomQueryPatches and PluginPackQueryPatchInputs in the '
                             'pipeline')
        patches = torch.stack([s.query_patches for s in batch_data_samples])  # [B, M, 3, P, P]
        batch_size, num_patches = patches.shape[:2]
        patches = self.normalize_like_inputs(patches.flatten(0, 1))
        feats = self._backbone(patches)[-1]  # [B * M, C, p, p]
        return feats.mean((2, 3)).view(batch_size, num_patches, -1)

    def normalize_like_inputs(self, images: Tensor) -> Tensor:
        """[n, 3, H, W] 0-255 images in the data's channel order -> what the
        data preprocessor makes of images (channel swap, mean and std)."""
        prep = self.data_preprocessor
        dtype = getattr(prep, 'mean', torch.empty(0)).dtype
        images = images.to(dtype if dtype.is_floating_point else torch.float32)
        if getattr(prep, '_channel_conversion', False):
            images = images[:, [2, 1, 0]]
        if getattr(prep, '_enable_normalize', False):
            images = (images - prep.mean) / prep.std
        return images

    def pre_decoder(self, memory: Tensor,
                    batch_data_samples: OptSampleList = None) -> Tuple[Dict, Dict]:
        """Patch queries: decoder inputs from ``PluginPatchQueries`` and the
        patch features [B, M, C] for the head's reconstruction loss."""
        feats = self.patch_features(batch_data_samples)
        decoder_inputs, head_inputs = self.queries(memory, batch_data_samples,
                                                   patch_features=feats)
        decoder_inputs['memory'] = memory
        head_inputs['patch_features'] = feats
        return decoder_inputs, head_inputs

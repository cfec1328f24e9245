"""The DETR detector: backbone -> projection -> encoder -> decoder -> head."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdet.models.detectors.base_detr import DetectionTransformer
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig


@MODELS.register_module()
class PluginDETR(DetectionTransformer):
    """DETR (Carion et al. 2020), built from registered, swappable parts.

    Follows mmdet's ``DetectionTransformer`` flow (``pre_transformer`` ->
    ``forward_encoder`` -> ``pre_decoder`` -> ``forward_decoder`` -> head),
    so mmdet's backbones, necks, heads and transformer stacks can replace
    the plugin's where shapes agree. Unlike mmdet's ``DETR``, the
    positional encoding, encoder and decoder are built from their configs'
    ``type`` (defaulting to the plugin's), so any registered module fits.

    Args:
        backbone (dict): backbone config (e.g. mmdet's ResNet, last stage only).
        neck (dict): projection to d (``PluginInputProjection`` or mmdet's
            ``ChannelMapper``).
        encoder (dict, optional): Defaults to ``PluginDetrTransformerEncoder``.
        decoder (dict, optional): Defaults to ``PluginDetrTransformerDecoder``.
        bbox_head (dict): Defaults to None (must be given).
        positional_encoding (dict, optional): Defaults to
            ``PluginSinePositionalEncoding(num_feats=d/2, normalize=True)``.
        num_queries (int): object queries N. Defaults to 100.
        num_query_groups (int): G groups of N queries during training, each
            matched one-to-one to the ground truth on its own and blind to the
            other groups in the decoder's self-attention; only the first group
            predicts at test time (Group DETR, Chen et al. 2022: more positive
            queries per image, faster convergence at the same test-time cost).
            Defaults to 1 (plain DETR).
        train_cfg, test_cfg, data_preprocessor, init_cfg: as mmdet's.
    """

    def __init__(self, backbone: ConfigType, neck: OptConfigType = None,
                 encoder: OptConfigType = None, decoder: OptConfigType = None,
                 bbox_head: OptConfigType = None, positional_encoding: OptConfigType = None,
                 num_queries: int = 100, num_query_groups: int = 1,
                 train_cfg: OptConfigType = None, test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if bbox_head is None:
            raise ValueError('model.bbox_head is required (e.g. type="PluginDETRHead")')
        if num_query_groups < 1:
            raise ValueError(f'model.num_query_groups must be >= 1, got {num_query_groups}')
        self.num_query_groups = num_query_groups
        super().__init__(backbone=backbone, neck=neck, encoder=encoder, decoder=decoder,
                         bbox_head=bbox_head, positional_encoding=positional_encoding,
                         num_queries=num_queries, train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)

    def _init_layers(self) -> None:
        """Build the positional encoding, encoder, decoder and queries."""
        self.encoder = MODELS.build(self._with_default_type(
            self.encoder, 'PluginDetrTransformerEncoder'))
        self.decoder = MODELS.build(self._with_default_type(
            self.decoder, 'PluginDetrTransformerDecoder'))
        self.embed_dims = self.encoder.embed_dims
        if self.decoder.embed_dims != self.embed_dims:
            raise ValueError(f'model.encoder.embed_dims ({self.embed_dims}) and '
                             f'model.decoder.embed_dims ({self.decoder.embed_dims}) differ')
        pos_cfg = dict(num_feats=self.embed_dims // 2, normalize=True)
        pos_cfg.update(self.positional_encoding or {})
        self.positional_encoding = MODELS.build(
            self._with_default_type(pos_cfg, 'PluginSinePositionalEncoding'))
        if 2 * self.positional_encoding.num_feats != self.embed_dims:
            raise ValueError(
                f'model.positional_encoding.num_feats ({self.positional_encoding.num_feats}) '
                f'must be half of embed_dims ({self.embed_dims})')
        self.query_embedding = nn.Embedding(self.num_queries * self.num_query_groups,
                                            self.embed_dims)

    @staticmethod
    def _with_default_type(cfg: OptConfigType, default: str) -> dict:
        cfg = dict(cfg or {})
        cfg.setdefault('type', default)
        return cfg

    def init_weights(self) -> None:
        """Xavier-uniform init of the transformer's matrices (as the reference)."""
        super().init_weights()
        for coder in (self.encoder, self.decoder):
            for p in coder.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    # ------------------------------------------------------------------ #
    def pre_transformer(self, img_feats: Tuple[Tensor],
                        batch_data_samples: OptSampleList = None) -> Tuple[Dict, Dict]:
        """Padding mask, positions and flattening.

        Args:
            img_feats (tuple[Tensor]): neck outputs; the last, [B, d, h, w], is used.
            batch_data_samples (list[DetDataSample]): for ``img_shape`` and
                ``batch_input_shape`` (the padded size).

        Returns:
            tuple[dict, dict]: encoder inputs ``feat`` [B, h*w, d],
            ``feat_mask`` [B, h*w] bool (True on padding) or None when no
            image is padded, ``feat_pos`` [B, h*w, d]; decoder inputs
            ``memory_mask``, ``memory_pos``.
        """
        feat = img_feats[-1]
        batch_size, feat_dim, feat_h, feat_w = feat.shape
        if batch_data_samples is None:
            raise ValueError('PluginDETR needs batch_data_samples (image shapes) to build '
                             'its padding mask')
        input_h, input_w = batch_data_samples[0].batch_input_shape
        img_shapes = [s.img_shape for s in batch_data_samples]
        if all(h == input_h and w == input_w for h, w in img_shapes):
            masks = None
            pos = self.positional_encoding(None, input=feat)
        else:
            # 1 on padding at input resolution, then nearest-resized to the feature map
            masks = feat.new_ones((batch_size, input_h, input_w))
            for i, (img_h, img_w) in enumerate(img_shapes):
                masks[i, :img_h, :img_w] = 0
            masks = F.interpolate(masks[:, None], size=(feat_h, feat_w)).to(torch.bool)[:, 0]
            pos = self.positional_encoding(masks)
        feat = feat.flatten(2).transpose(1, 2)  # [B, h*w, d]
        pos = pos.to(feat.dtype).flatten(2).transpose(1, 2)  # [B, h*w, d]
        if masks is not None:
            masks = masks.flatten(1)  # [B, h*w]
        return (dict(feat=feat, feat_mask=masks, feat_pos=pos),
                dict(memory_mask=masks, memory_pos=pos))

    def forward_encoder(self, feat: Tensor, feat_mask: Tensor, feat_pos: Tensor) -> Dict:
        """[B, S, d] features -> ``memory`` [B, S, d]."""
        return dict(memory=self.encoder(query=feat, query_pos=feat_pos,
                                        key_padding_mask=feat_mask))

    def pre_decoder(self, memory: Tensor) -> Tuple[Dict, Dict]:
        """Queries: content starts at zeros, the learned embeddings [N, d]
        are the query positions (DETR paper, 3.2). With query groups in
        training: G * N queries and a block-diagonal self-attention mask."""
        batch_size = memory.size(0)
        groups = self.num_query_groups if self.training else 1
        query_pos = self.query_embedding.weight[:self.num_queries * groups].to(memory.dtype)
        query_pos = query_pos.unsqueeze(0).expand(batch_size, -1, -1)  # [B, G*N, d]
        query = torch.zeros_like(query_pos)
        decoder_inputs = dict(query=query, query_pos=query_pos, memory=memory)
        head_inputs = dict()
        if groups > 1:
            group_of = torch.arange(self.num_queries * groups,
                                    device=memory.device) // self.num_queries
            # True where query i may not see query j: [G*N, G*N]
            decoder_inputs['self_attn_mask'] = group_of[:, None] != group_of[None, :]
            head_inputs['num_query_groups'] = groups
        return decoder_inputs, head_inputs

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor,
                        memory_mask: Tensor, memory_pos: Tensor,
                        self_attn_mask: Optional[Tensor] = None) -> Dict:
        """-> ``hidden_states`` [L, B, N, d] ([L, B, G*N, d] with query groups)."""
        kwargs = dict() if self_attn_mask is None else dict(self_attn_mask=self_attn_mask)
        hidden_states = self.decoder(query=query, key=memory, value=memory,
                                     query_pos=query_pos, key_pos=memory_pos,
                                     key_padding_mask=memory_mask, **kwargs)
        return dict(hidden_states=hidden_states)

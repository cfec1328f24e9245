"""The DETR detector: backbone -> projection -> encoder -> decoder -> head."""
import logging
import math
from typing import Dict, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.logging import MessageHub, print_log
from torch import Tensor, nn

from mmdet.models.detectors.base_detr import DetectionTransformer
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from ..backbones.folded_bn import FoldedConv2d, fold_frozen_batchnorm
from ..layers.linear import Linear
from .checkpoint_guard import register_checkpoint_guard


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
            ``PluginSinePositionalEncoding(num_feats=d/2)`` (normalised).
        num_queries (int): object queries N. Defaults to 100.
        num_query_groups (int): G groups of N queries during training, each
            matched one-to-one to the ground truth on its own and blind to the
            other groups in the decoder's self-attention; only the first group
            predicts at test time (Group DETR, Chen et al. 2022: more positive
            queries per image, faster convergence at the same test-time cost).
            Defaults to 1 (plain DETR).
        anchor_points (bool): give each query a learned reference point
            (x, y) in [0, 1]: its positional embedding is an MLP of the point's
            sine encoding (the same encoding as the memory's positions), the
            learned embedding becomes its content, and the head predicts the
            box centre as an offset from the point in logit space (Anchor DETR,
            Wang et al. 2022; Conditional DETR, Meng et al. 2021: spatial
            queries make cross-attention local from the start and converge
            much faster). Defaults to False (plain DETR).
        reset_classifier (bool): when a loaded checkpoint's classifier has
            another number of classes, start the classifier afresh instead of
            failing (fine-tuning on a new class set). Defaults to False.
        fold_frozen_bn (bool): run the backbone's eval-mode batch norms as
            part of the convolutions before them (see
            :func:`~mmdet_detr_plugin.models.backbones.fold_frozen_batchnorm`):
            same outputs up to float rounding, same state-dict keys, about 8%
            less time for the R50 backbone's training step on CPU, and none of
            the batch norms' activations kept. Batch norms in train mode are
            never folded. Defaults to True.
        channels_last (bool): keep the backbone's convolution weights and
            its input in channels-last memory layout (NHWC), which oneDNN
            and cuDNN convolve without layout conversions: on CPU the R50
            backbone's training step runs about 12% faster, its inference
            about 9%. Same values, same state-dict keys and shapes. Applied
            only when every convolution of the backbone is a plain
            ``Conv2d`` (not, e.g., mmcv's deformable convolutions).
            Defaults to True.
        nonfinite_loss (str): a NaN/inf loss term in training: ``'raise'``
            stops with an error naming the step and the terms, before any
            weight is touched; ``'skip'`` logs them and skips the step (no
            gradient, no optimizer update; single process only). Defaults to
            ``'raise'``.
        train_cfg, test_cfg, data_preprocessor, init_cfg: as mmdet's.
    """

    def __init__(self, backbone: ConfigType, neck: OptConfigType = None,
                 encoder: OptConfigType = None, decoder: OptConfigType = None,
                 bbox_head: OptConfigType = None, positional_encoding: OptConfigType = None,
                 num_queries: int = 100, num_query_groups: int = 1,
                 anchor_points: bool = False, fold_frozen_bn: bool = True,
                 channels_last: bool = True,
                 reset_classifier: bool = False, nonfinite_loss: str = 'raise',
                 train_cfg: OptConfigType = None, test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if bbox_head is None:
            raise ValueError('model.bbox_head is required (e.g. type="PluginDETRHead")')
        if num_query_groups < 1:
            raise ValueError(f'model.num_query_groups must be >= 1, got {num_query_groups}')
        if nonfinite_loss not in ('raise', 'skip'):
            raise ValueError(f'model.nonfinite_loss must be "raise" or "skip", '
                             f'got {nonfinite_loss!r}')
        self.num_query_groups = num_query_groups
        self.anchor_points = anchor_points
        self.reset_classifier = reset_classifier
        self.nonfinite_loss = nonfinite_loss
        super().__init__(backbone=backbone, neck=neck, encoder=encoder, decoder=decoder,
                         bbox_head=bbox_head, positional_encoding=positional_encoding,
                         num_queries=num_queries, train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if fold_frozen_bn:
            fold_frozen_batchnorm(self.backbone)
        # every module holding 4-D weights (convolutions of any kind) must be
        # a plain Conv2d: custom kernels (mmcv's DCN) may assume NCHW
        convs = [m for m in self.backbone.modules()
                 if any(p.dim() == 4 for p in m.parameters(recurse=False))]
        self.channels_last = channels_last and bool(convs) and all(
            type(m) in (nn.Conv2d, FoldedConv2d) for m in convs)
        if self.channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        register_checkpoint_guard(self)

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
        # num_feats defaults to d / 2; everything else to the module's own defaults
        pos_cfg = dict(num_feats=self.embed_dims // 2)
        pos_cfg.update(self.positional_encoding or {})
        self.positional_encoding = MODELS.build(
            self._with_default_type(pos_cfg, 'PluginSinePositionalEncoding'))
        if 2 * self.positional_encoding.num_feats != self.embed_dims:
            raise ValueError(
                f'model.positional_encoding.num_feats ({self.positional_encoding.num_feats}) '
                f'must be half of embed_dims ({self.embed_dims})')
        self.query_embedding = nn.Embedding(self.num_queries * self.num_query_groups,
                                            self.embed_dims)
        if self.anchor_points:
            # reference points in logit space; positional MLP of their encoding
            self.anchor_embedding = nn.Embedding(self.num_queries * self.num_query_groups, 2)
            self.anchor_pos_mlp = nn.Sequential(
                Linear(self.embed_dims, self.embed_dims), nn.ReLU(inplace=True),
                Linear(self.embed_dims, self.embed_dims))

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor]:
        """Backbone and neck; [B, 3, H, W] -> neck outputs. The images go in
        channels-last when the backbone is (see ``channels_last``)."""
        if self.channels_last:
            batch_inputs = batch_inputs.contiguous(memory_format=torch.channels_last)
        return super().extract_feat(batch_inputs)

    def parse_losses(self, losses: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        """mmengine's loss parsing plus the non-finite check.

        All processes agree on the verdict (one all-reduce), so a distributed
        run stops (or skips) as a whole.
        """
        loss, log_vars = super().parse_losses(losses)
        finite = torch.stack([v.detach().float().isfinite().all() for v in log_vars.values()])
        verdict = finite.all().to(torch.float32)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(verdict, op=dist.ReduceOp.MIN)
        if verdict.item() == 1:
            return loss, log_vars
        bad = [name for name, ok in zip(log_vars, finite.tolist()) if not ok and name != 'loss']
        step = MessageHub.get_current_instance().get_info('iter')
        where = f'at iteration {step + 1}' if step is not None else 'in this step'
        terms = ', '.join(bad) if bad else 'on another process'
        if self.nonfinite_loss == 'raise':
            raise FloatingPointError(
                f'non-finite loss {where}: {terms}. No weights were updated; the last '
                'checkpoint is intact. Lower the learning rate or check the data, then '
                'resume with --resume; or set model.nonfinite_loss="skip" to skip such steps')
        if dist.is_available() and dist.is_initialized():
            raise FloatingPointError(f'non-finite loss {where}: {terms} (model.nonfinite_loss='
                                     '"skip" is not supported in distributed runs)')
        print_log(f'non-finite loss {where}: {terms}; step skipped', logger='current',
                  level=logging.WARNING)
        # a fresh leaf: backward reaches no parameter, so every grad stays None and
        # the optimizer leaves every weight (and its moments) untouched
        skipped = torch.zeros((), device=loss.device, requires_grad=True)
        return skipped, {k: torch.nan_to_num(v.detach(), nan=-1.0, posinf=-1.0, neginf=-1.0)
                         for k, v in log_vars.items()}

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
        if self.anchor_points:
            # points spread uniformly over the image (Anchor DETR)
            with torch.no_grad():
                points = torch.rand_like(self.anchor_embedding.weight).clamp_(0.01, 0.99)
                self.anchor_embedding.weight.copy_(torch.logit(points))

    def anchor_pos_encoding(self, points: Tensor) -> Tensor:
        """Points [..., 2] (x, y) in [0, 1] -> [..., d]: the sine encoding the
        memory's positions get (y channels first, positions scaled to
        ``(0, 2 pi]``, same temperature), then the positional MLP."""
        pe = self.positional_encoding
        num_feats = self.embed_dims // 2
        dim_t = torch.arange(num_feats, dtype=torch.float32, device=points.device)
        dim_t = getattr(pe, 'temperature', 10000)**(
            2 * torch.div(dim_t, 2, rounding_mode='floor') / num_feats)
        scale = getattr(pe, 'scale', 2 * math.pi)
        pos = points.float()[..., None] * scale / dim_t  # [..., 2, F]
        pos = torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)
        pos = torch.cat((pos[..., 1, :], pos[..., 0, :]), dim=-1)  # y first, as the memory
        return self.anchor_pos_mlp(pos.to(points.dtype))

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
        num_all = self.num_queries * groups
        query_pos = self.query_embedding.weight[:num_all].to(memory.dtype)
        query_pos = query_pos.unsqueeze(0).expand(batch_size, -1, -1)  # [B, G*N, d]
        head_inputs = dict()
        if self.anchor_points:
            points = self.anchor_embedding.weight[:num_all].sigmoid()  # [G*N, 2]
            query = query_pos  # the learned embedding is the content
            query_pos = self.anchor_pos_encoding(points).to(memory.dtype)
            query_pos = query_pos.unsqueeze(0).expand(batch_size, -1, -1)
            head_inputs['references'] = points.unsqueeze(0).expand(batch_size, -1, -1)
        else:
            query = torch.zeros_like(query_pos)
        decoder_inputs = dict(query=query, query_pos=query_pos, memory=memory)
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

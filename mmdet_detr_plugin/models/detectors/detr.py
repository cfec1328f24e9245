"""The DETR detector: backbone -> projection -> encoder -> decoder -> head."""
import inspect
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor, nn

from mmdet.models.dense_heads import AnchorHead
from mmdet.models.detectors.base_detr import DetectionTransformer
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from ...accel import accelerate
from ...converters.legacy import upgrade_plugin_state_dict
from ...structures.box_ops import box_xyxy_to_cxcywh, image_scale
from .checkpoint_guard import check_incoming_state_dict

# options of the plugin's previous version, and where they are now
MOVED_OPTIONS = dict(
    num_query_groups="model.queries=dict(type='PluginDETRQueries', num_groups=G)",
    anchor_points="model.queries=dict(type='PluginAnchorPointQueries')",
    fold_frozen_bn='model.accel.fold_frozen_bn', channels_last='model.accel.channels_last',
    nonfinite_loss="custom_hooks=[dict(type='PluginNonFiniteLossHook', policy=...)]")


@MODELS.register_module()
class PluginDETR(DetectionTransformer):
    """DETR (Carion et al. 2020), built from registered, swappable parts.

    Follows mmdet's ``DetectionTransformer`` flow (``pre_transformer`` ->
    ``forward_encoder`` -> ``pre_decoder`` -> ``forward_decoder`` -> head),
    so mmdet's backbones, necks, heads and transformer stacks can replace
    the plugin's where shapes agree. Unlike mmdet's ``DETR``, the
    positional encoding, encoder, decoder and object queries are built from
    their configs' ``type`` (defaulting to the plugin's), so any registered
    module fits.

    Args:
        backbone (dict): backbone config (e.g. mmdet's ResNet, last stage only).
        neck (dict): projection to d (``PluginInputProjection`` or mmdet's
            ``ChannelMapper``).
        encoder (dict, optional): Defaults to ``PluginDetrTransformerEncoder``.
        decoder (dict, optional): Defaults to ``PluginDetrTransformerDecoder``.
        bbox_head (dict): Defaults to None (must be given).
        positional_encoding (dict, optional): Defaults to
            ``PluginSinePositionalEncoding(num_feats=d/2)`` (normalised).
        num_queries (int): object queries N at test time. Defaults to 100.
        queries (dict, optional): the query scheme (see
            ``models/layers/queries.py``); ``num_queries`` and ``embed_dims``
            are filled in. Defaults to ``PluginDETRQueries`` (DETR's learned
            queries); ``PluginAnchorPointQueries`` gives each query a learned
            reference point, ``PluginAnchorBoxQueries`` a 4-D anchor box,
            ``PluginProposalQueries`` the best boxes of ``encoder_head``
            (two-stage query selection); all take ``num_groups`` (Group
            DETR). ``PluginDenoisingQueries`` wraps one of them for denoising training (DN-DETR).
        encoder_head (dict, optional): a dense head on the encoder's
            memory, in training only (Co-DETR's one-to-many auxiliary head,
            Zong et al. 2023): any mmdet dense head with ``loss(feats,
            batch_data_samples)``, e.g. ``ATSSHead`` or ``FCOSHead`` with
            ``in_channels`` = d, one level whose stride is the memory's, and
            its own ``train_cfg``. The memory [B, h*w, d] enters it as the
            map [B, d, h, w]; its losses are logged as ``enc.loss_*``. Every
            memory cell inside an object then gets a class and box target
            each step, which trains backbone and encoder far faster than the
            decoder's few matched queries. Test time does not run it, except
            for ``PluginProposalQueries``, whose anchor boxes are its best
            proposals (it must then be an anchor head). Defaults to None.
        reset_classifier (bool): when a loaded checkpoint's classifier has
            another number of classes, start the classifier afresh instead of
            failing (fine-tuning on a new class set). Defaults to False.
        accel (str | dict): the speed kernels applied to the built model
            (``mmdet_detr_plugin.accel``): ``'default'`` (all that pay on
            this machine), ``'reference'`` (none: the plain computation), or
            a dict of kernels changed from the default, e.g.
            ``dict(linear='torch')``. Same parameters, state-dict keys and
            outputs (up to float rounding) in every setting. Defaults to
            ``'default'``.
        train_cfg, test_cfg, data_preprocessor, init_cfg: as mmdet's.
    """

    def __init__(self, backbone: ConfigType, neck: OptConfigType = None,
                 encoder: OptConfigType = None, decoder: OptConfigType = None,
                 bbox_head: OptConfigType = None, positional_encoding: OptConfigType = None,
                 num_queries: int = 100, queries: OptConfigType = None,
                 encoder_head: OptConfigType = None, reset_classifier: bool = False,
                 accel: Union[str, dict] = 'default',
                 train_cfg: OptConfigType = None, test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None, **moved) -> None:
        for key in moved:
            raise TypeError(f'model.{key} is not an option of PluginDETR'
                            + (f'; it moved to {MOVED_OPTIONS[key]}' if key in MOVED_OPTIONS
                               else ''))
        if bbox_head is None:
            raise ValueError('model.bbox_head is required (e.g. type="PluginDETRHead")')
        self.queries = queries  # the config until _init_layers builds it
        self.reset_classifier = reset_classifier
        super().__init__(backbone=backbone, neck=neck, encoder=encoder, decoder=decoder,
                         bbox_head=bbox_head, positional_encoding=positional_encoding,
                         num_queries=num_queries, train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.encoder_head = None if encoder_head is None else self._build_encoder_head(
            encoder_head)
        if getattr(self.queries, 'takes_proposals', False):
            if not isinstance(self.encoder_head, AnchorHead):
                raise ValueError(
                    f'model.queries ({self.queries.__class__.__name__} or its matching scheme) '
                    'starts from proposals of model.encoder_head, which must be an mmdet '
                    f'anchor head (e.g. ATSSHead), got {type(self.encoder_head).__name__}')
        self.accel = accelerate(self, accel)

    def _build_encoder_head(self, cfg: ConfigType) -> nn.Module:
        """Build ``model.encoder_head`` and check that it can read the memory."""
        cfg = dict(cfg)
        if 'type' not in cfg:
            raise ValueError("model.encoder_head needs a type (an mmdet dense head, e.g. "
                             "'ATSSHead')")
        in_channels = cfg.get('in_channels')
        if in_channels is not None and in_channels != self.embed_dims:
            raise ValueError(f'model.encoder_head.in_channels ({in_channels}) must be the '
                             f"encoder's width embed_dims ({self.embed_dims})")
        head = MODELS.build(cfg)
        if not callable(getattr(head, 'loss', None)):
            raise TypeError(f'model.encoder_head ({cfg["type"]}) has no loss(feats, '
                            'batch_data_samples): use an mmdet dense head')
        strides = getattr(getattr(head, 'prior_generator', None), 'strides', None)
        if strides is not None and len(strides) != 1:
            raise ValueError(f'model.encoder_head has {len(strides)} levels ({strides}); the '
                             'memory is one map: give it one stride, the memory\'s')
        return head

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
        queries = self._with_default_type(self.queries, 'PluginDETRQueries')
        queries.update(num_queries=self.num_queries, embed_dims=self.embed_dims)
        scheme = MODELS.get(queries['type'])
        if getattr(scheme, 'needs_num_classes', False):  # denoising: label embeddings
            queries.setdefault('num_classes', self.bbox_head.num_classes)
        self.queries = MODELS.build(queries)
        if getattr(scheme, 'needs_num_classes', False) and 'denoising' not in inspect.signature(
                self.bbox_head.loss).parameters:
            raise ValueError(f'model.queries is {queries["type"]} (denoising training), but '
                             f'model.bbox_head ({type(self.bbox_head).__name__}) has no '
                             'denoising losses: use PluginDETRHead, or drop denoising')

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
    def forward_transformer(self, img_feats: Tuple[Tensor],
                            batch_data_samples: OptSampleList = None) -> Dict:
        """mmdet's flow, with the batch handed to the query scheme too."""
        return self.run_transformer(img_feats, batch_data_samples)[0]

    def run_transformer(self, img_feats: Tuple[Tensor], batch_data_samples: OptSampleList = None
                        ) -> Tuple[Dict, Optional[tuple]]:
        """-> the head's inputs, and the encoder head's outputs on the memory
        (in training, or for a scheme that takes proposals) or None."""
        encoder_inputs, decoder_inputs = self.pre_transformer(img_feats, batch_data_samples)
        memory = self.forward_encoder(**encoder_inputs)['memory']
        takes_proposals = getattr(self.queries, 'takes_proposals', False)
        enc_outs, query_kwargs = None, {}
        if self.encoder_head is not None and (self.training or takes_proposals):
            batch_size, _, feat_h, feat_w = img_feats[-1].shape
            self._check_encoder_head_stride(batch_data_samples, feat_h, feat_w)
            memory_map = memory.transpose(1, 2).reshape(batch_size, -1, feat_h, feat_w)
            enc_outs = self.encoder_head((memory_map, ))  # per-level lists
            if takes_proposals:
                query_kwargs['proposals'] = self.encoder_proposals(
                    enc_outs, (feat_h, feat_w), batch_data_samples)
        head_inputs = self.decode(memory, decoder_inputs, batch_data_samples, **query_kwargs)
        return head_inputs, enc_outs

    def encoder_proposals(self, enc_outs: tuple, feat_size: Tuple[int, int],
                          batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """An anchor head's outputs on the memory -> every anchor's box and
        score: ``boxes`` [B, P, 4] normalised cxcywh (by each image's size)
        and ``scores`` [B, P] (the best class's sigmoid, times the
        centre-ness where the head has one; -1 for anchors centred on
        padding)."""
        head = self.encoder_head
        cls_score, bbox_pred = enc_outs[0][0], enc_outs[1][0]  # one level
        batch_size = cls_score.shape[0]
        priors = head.prior_generator.grid_priors([feat_size], device=cls_score.device)[0]
        scores = cls_score.permute(0, 2, 3, 1).reshape(batch_size, -1, head.cls_out_channels)
        scores = scores.sigmoid().max(-1).values  # [B, P]
        if len(enc_outs) > 2:  # ATSS's centre-ness
            scores = scores * enc_outs[2][0].permute(0, 2, 3, 1).reshape(batch_size, -1).sigmoid()
        deltas = bbox_pred.permute(0, 2, 3, 1).reshape(batch_size, -1, 4)
        boxes = head.bbox_coder.decode(priors[None].expand(batch_size, -1, -1), deltas)
        sizes = torch.stack([image_scale(s.img_shape, boxes) for s in batch_data_samples])
        boxes = box_xyxy_to_cxcywh(torch.minimum(boxes.clamp(min=0), sizes[:, None])
                                   / sizes[:, None])  # [B, P, 4] in [0, 1]
        centres = box_xyxy_to_cxcywh(priors)[:, :2]  # [P, 2] px
        inside = (centres[None] < sizes[:, None, :2]).all(-1)  # [B, P]
        scores = torch.where(inside, scores, scores.new_full((), -1.))
        return dict(boxes=boxes, scores=scores)

    def decode(self, memory: Tensor, decoder_inputs: Dict,
               batch_data_samples: OptSampleList = None, **query_kwargs) -> Dict:
        """Memory [B, S, d] -> the head's inputs: the query scheme's queries
        through the decoder (``pre_transformer``'s ``decoder_inputs``)."""
        query_inputs, head_inputs = self.pre_decoder(memory, batch_data_samples,
                                                     **query_kwargs)
        decoder_inputs.update(query_inputs)
        head_inputs.update(self.forward_decoder(**decoder_inputs))
        return head_inputs

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """mmdet's losses, and ``model.encoder_head``'s (``enc.loss_*``) when set."""
        img_feats = self.extract_feat(batch_inputs)
        head_inputs, enc_outs = self.run_transformer(img_feats, batch_data_samples)
        losses = self.bbox_head.loss(**head_inputs, batch_data_samples=batch_data_samples)
        if enc_outs is not None:
            gts, gts_ignore, metas = unpack_gt_instances(batch_data_samples)
            enc_losses = self.encoder_head.loss_by_feat(*enc_outs, gts, metas, gts_ignore)
            for key, value in enc_losses.items():  # per-level lists: one level
                losses[f'enc.{key}'] = sum(value) if isinstance(value, (list, tuple)) else value
        return losses

    def _check_encoder_head_stride(self, batch_data_samples: SampleList, feat_h: int,
                                   feat_w: int) -> None:
        strides = getattr(getattr(self.encoder_head, 'prior_generator', None), 'strides', None)
        if not strides:
            return
        input_h, input_w = batch_data_samples[0].batch_input_shape
        stride = (input_w / feat_w, input_h / feat_h)  # (x, y), as mmdet's strides
        if any(abs(a - b) > 1 for a, b in zip(strides[0], stride)):
            raise ValueError(
                f'model.encoder_head\'s stride is {tuple(strides[0])} but the memory\'s is '
                f'{stride[0]:g}: a {input_h}x{input_w} batch gives a {feat_h}x{feat_w} map. Set '
                'the head\'s strides (anchor_generator.strides, or strides) to the memory\'s')

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
        return self.encoder_inputs(feat, masks, pos)

    def encoder_inputs(self, feat: Tensor, masks: Optional[Tensor],
                       pos: Tensor) -> Tuple[Dict, Dict]:
        """Flatten the map [B, d, h, w], its padding mask [B, h, w] (or None)
        and positions [B, d, h, w] into the encoder's and decoder's inputs
        (see :meth:`pre_transformer`)."""
        feat = feat.flatten(2).transpose(1, 2)  # [B, h*w, d]
        pos = pos.to(feat.dtype).flatten(2).transpose(1, 2)  # [B, h*w, d]
        if masks is not None:
            masks = masks.flatten(1)  # [B, h*w]
        return (dict(feat=feat, feat_mask=masks, feat_pos=pos),
                dict(memory_mask=masks, memory_pos=pos))

    def forward_encoder(self, feat: Tensor, feat_mask: Optional[Tensor],
                        feat_pos: Tensor) -> Dict:
        """[B, S, d] features -> ``memory`` [B, S, d]."""
        return dict(memory=self.encoder(query=feat, query_pos=feat_pos,
                                        key_padding_mask=feat_mask))

    def pre_decoder(self, memory: Tensor, batch_data_samples: OptSampleList = None,
                    **query_kwargs) -> Tuple[Dict, Dict]:
        """The query scheme's queries (``model.queries``): decoder inputs
        ``query``, ``query_pos`` [B, Q, d] (and ``self_attn_mask``) with the
        ``memory``, and the head's extra inputs. ``query_kwargs``: the
        encoder head's ``proposals`` for a scheme that takes them."""
        decoder_inputs, head_inputs = self.queries(memory, batch_data_samples, **query_kwargs)
        decoder_inputs['memory'] = memory
        return decoder_inputs, head_inputs

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor,
                        memory_mask: Optional[Tensor], memory_pos: Tensor,
                        self_attn_mask: Optional[Tensor] = None) -> Dict:
        """-> ``hidden_states`` [L, B, Q, d]."""
        kwargs = dict() if self_attn_mask is None else dict(self_attn_mask=self_attn_mask)
        hidden_states = self.decoder(query=query, key=memory, value=memory,
                                     query_pos=query_pos, key_pos=memory_pos,
                                     key_padding_mask=memory_mask, **kwargs)
        return dict(hidden_states=hidden_states)

    # ------------------------------------------------------------------ #
    def _load_from_state_dict(self, state_dict: Dict[str, Tensor], prefix: str, *args,
                              **kwargs) -> None:
        """Every state dict loaded into the detector (``load_from``,
        ``--resume``, ``init_detector``) is checked here first: a checkpoint
        of the plugin's earlier layout is renamed, and one that does not fit
        the model is refused with one error (``checkpoint_guard.py``)."""
        upgraded, renamed = upgrade_plugin_state_dict(state_dict, prefix)
        if renamed:
            state_dict.clear()
            state_dict.update(upgraded)
            print_log(f'checkpoint of the plugin\'s earlier layout: renamed {len(renamed)} '
                      f'key(s) ({", ".join(renamed[:3])}{", ..." if len(renamed) > 3 else ""})',
                      logger='current')
        check_incoming_state_dict(self, state_dict, prefix, self.reset_classifier)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

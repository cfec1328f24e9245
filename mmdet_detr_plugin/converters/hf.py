"""The plugin's DETR as transformers' ``DetrForObjectDetection``, same weights.

For side-by-side measurements (``tools/analysis_tools/benchmark_vs_mmdet.py``)
and for moving a trained model either way. ``transformers`` is an optional
extra: only :func:`build_hf_detr` imports it.

Names (:data:`HF_TABLE`; R50 shown, stage s = 0..3 is mmdet's ``layer{s+1}``,
``coder`` ``encoder`` or ``decoder``)::

    plugin                                   transformers
    backbone.conv1 / bn1                     model.backbone.model.embedder.embedder.convolution / normalization
    backbone.layer{s+1}.{b}.conv{j+1} / bn{j+1}
                                             model.backbone.model.encoder.stages.{s}.layers.{b}.layer.{j}.convolution / normalization
    backbone.layer{s+1}.{b}.downsample.0 / 1 ....stages.{s}.layers.{b}.shortcut.convolution / normalization
    neck.proj                                model.input_projection
    queries.embedding  [N, d]                model.query_position_embeddings
    coder.layers.{i}.self_attn.in_proj_{weight,bias}  [3d, d], [3d]
                                             ....self_attn.{q,k,v}_proj  (rows 0:d, d:2d, 2d:3d)
    ....self_attn.out_proj                   ....self_attn.o_proj
    decoder.layers.{i}.cross_attn            model.decoder.layers.{i}.encoder_attn
    encoder norm1, norm2                     self_attn_layer_norm, final_layer_norm
    decoder norm1, norm2, norm3              self_attn_layer_norm, encoder_attn_layer_norm, final_layer_norm
    ....ffn.linear1 / linear2                ....mlp.fc1 / fc2
    decoder.norm                             model.decoder.layernorm
    bbox_head.fc_cls                         class_labels_classifier
    bbox_head.bbox_mlp.{i}                   bbox_predictor.layers.{i}

Two steps are not renames: the plugin's packed ``in_proj`` is split into
transformers' three projections (and merged back), and batch norms'
``num_batches_tracked`` are dropped (transformers' frozen batch norm keeps
none) and added back as zeros.
"""
from collections import OrderedDict
from typing import Dict, List, Mapping, Sequence, Tuple

import torch
from torch import Tensor, nn

from .rename import PARAM, RenameTable, listed

_RESNET_DEPTHS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
_HF_RESNET = 'model.backbone.model'


def _backbone_rules() -> List[Tuple[str, str]]:
    """mmdet ResNet <-> transformers ResNet: the stage and layer indices
    shift by one (``layer1`` is ``stages.0``, ``conv1`` is ``layer.0``), so
    one rule per stage and layer."""
    rules = [('backbone.conv1.{tail}', f'{_HF_RESNET}.embedder.embedder.convolution.{{tail}}'),
             ('backbone.bn1.{tail}', f'{_HF_RESNET}.embedder.embedder.normalization.{{tail}}')]
    for s in range(4):
        block = f'{_HF_RESNET}.encoder.stages.{s}.layers.{{b}}'
        for j in range(3):
            rules += [(f'backbone.layer{s + 1}.{{b}}.conv{j + 1}.{{tail}}',
                       f'{block}.layer.{j}.convolution.{{tail}}'),
                      (f'backbone.layer{s + 1}.{{b}}.bn{j + 1}.{{tail}}',
                       f'{block}.layer.{j}.normalization.{{tail}}')]
        rules += [(f'backbone.layer{s + 1}.{{b}}.downsample.0.{{tail}}',
                   f'{block}.shortcut.convolution.{{tail}}'),
                  (f'backbone.layer{s + 1}.{{b}}.downsample.1.{{tail}}',
                   f'{block}.shortcut.normalization.{{tail}}')]
    return rules


# On the plugin side, '{qkv}' names the row blocks of in_proj_weight / in_proj_bias
# that _split_in_proj makes and _merge_in_proj packs again.
HF_TABLE = RenameTable(
    _backbone_rules() + [
        ('neck.proj.{p}', 'model.input_projection.{p}'),
        ('queries.embedding.weight', 'model.query_position_embeddings.weight'),
        ('{coder}.layers.{i}.self_attn.{qkv}.{p}',
         'model.{coder}.layers.{i}.self_attn.{qkv}.{p}'),
        ('{coder}.layers.{i}.self_attn.out_proj.{p}',
         'model.{coder}.layers.{i}.self_attn.o_proj.{p}'),
        ('decoder.layers.{i}.cross_attn.{qkv}.{p}',
         'model.decoder.layers.{i}.encoder_attn.{qkv}.{p}'),
        ('decoder.layers.{i}.cross_attn.out_proj.{p}',
         'model.decoder.layers.{i}.encoder_attn.o_proj.{p}'),
        ('{coder}.layers.{i}.ffn.linear1.{p}', 'model.{coder}.layers.{i}.mlp.fc1.{p}'),
        ('{coder}.layers.{i}.ffn.linear2.{p}', 'model.{coder}.layers.{i}.mlp.fc2.{p}'),
        ('{coder}.layers.{i}.norm1.{p}',
         'model.{coder}.layers.{i}.self_attn_layer_norm.{p}'),
        ('encoder.layers.{i}.norm2.{p}', 'model.encoder.layers.{i}.final_layer_norm.{p}'),
        ('decoder.layers.{i}.norm2.{p}',
         'model.decoder.layers.{i}.encoder_attn_layer_norm.{p}'),
        ('decoder.layers.{i}.norm3.{p}', 'model.decoder.layers.{i}.final_layer_norm.{p}'),
        ('decoder.norm.{p}', 'model.decoder.layernorm.{p}'),
        ('bbox_head.fc_cls.{p}', 'class_labels_classifier.{p}'),
        ('bbox_head.bbox_mlp.{i}.{p}', 'bbox_predictor.layers.{i}.{p}'),
    ],
    placeholders=dict(coder=r'(?:en|de)coder', i=r'\d+', b=r'\d+', qkv=r'[qkv]_proj',
                      p=PARAM, tail=r'.+'))
_QKV = ('q_proj', 'k_proj', 'v_proj')


def _split_in_proj(state: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """``*.in_proj_weight`` [3d, d] / ``*.in_proj_bias`` [3d] -> ``*.q_proj.weight``
    [d, d], ``*.k_proj.weight``, ``*.v_proj.weight`` / ``*.{q,k,v}_proj.bias`` [d]
    (row blocks 0:d, d:2d, 2d:3d, views of the packed tensor)."""
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in state.items():
        module, _, name = key.rpartition('.')
        if name in ('in_proj_weight', 'in_proj_bias'):
            kind = name[len('in_proj_'):]  # weight | bias
            for proj, rows in zip(_QKV, value.chunk(3, dim=0)):
                out[f'{module}.{proj}.{kind}'] = rows
        else:
            out[key] = value
    return out


def _merge_in_proj(state: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Inverse of :func:`_split_in_proj`: the three projections of a module
    concatenated (q, k, v rows) into its ``in_proj_{weight,bias}``, placed
    where ``q_proj`` was."""
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in state.items():
        parts = key.split('.')
        if len(parts) < 3 or parts[-2] not in _QKV:
            out[key] = value
        elif parts[-2] == 'q_proj':
            module, kind = '.'.join(parts[:-2]), parts[-1]
            names = [f'{module}.{proj}.{kind}' for proj in _QKV]
            absent = [n for n in names if n not in state]
            if absent:
                raise KeyError(f'{key!r} has no {listed(absent)} to form {module}.in_proj_{kind}')
            out[f'{module}.in_proj_{kind}'] = torch.cat([state[n] for n in names], dim=0)
        elif f'{".".join(parts[:-2])}.q_proj.{parts[-1]}' not in state:
            raise KeyError(f'{key!r} has no q_proj beside it to form an in_proj_{parts[-1]}')
    return out


def plugin_to_hf(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """``PluginDETR`` state dict -> ``DetrForObjectDetection`` state dict.

    Args:
        state_dict (Mapping[str, Tensor]): a plain DETR (learned queries,
            post-norm) on an mmdet ResNet-50/101/152.

    Returns:
        OrderedDict[str, Tensor]: transformers' names; tensors shared, the
        q/k/v projections views of the packed ``in_proj``.

    Raises:
        KeyError: keys without a transformers counterpart, named.
    """
    # 1. no num_batches_tracked; 2. q/k/v apart; 3. names
    kept = OrderedDict((k, v) for k, v in state_dict.items()
                       if not k.endswith('.num_batches_tracked'))
    renamed, unmatched = HF_TABLE.rename(_split_in_proj(kept), to='other')
    if unmatched:
        raise KeyError(f'{len(unmatched)} key(s) have no transformers counterpart: '
                       f'{listed(unmatched)} (only plain DETR on an mmdet ResNet converts)')
    return renamed


def hf_to_plugin(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """``DetrForObjectDetection`` state dict -> ``PluginDETR`` state dict.

    Args:
        state_dict (Mapping[str, Tensor]): transformers' DETR with a
            transformers ResNet backbone (``use_timm_backbone=False``).

    Returns:
        OrderedDict[str, Tensor]: the plugin's names; ``in_proj_weight``
        [3d, d] and ``in_proj_bias`` [3d] packed from q, k, v (new tensors),
        a zero ``num_batches_tracked`` after each backbone batch norm, the
        other tensors shared.

    Raises:
        KeyError: keys without a plugin counterpart (e.g. a timm backbone),
            or a q/k/v projection without its two siblings, named.
    """
    # 1. names; 2. q/k/v packed; 3. the batch norms' counters
    renamed, unmatched = HF_TABLE.rename(state_dict, to='plugin')
    if unmatched:
        raise KeyError(f'{len(unmatched)} key(s) have no PluginDETR counterpart: '
                       f'{listed(unmatched)} (only a transformers ResNet backbone converts)')
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in _merge_in_proj(renamed).items():
        out[key] = value
        if key.startswith('backbone.') and key.endswith('.running_var'):
            out[key[:-len('running_var')] + 'num_batches_tracked'] = torch.tensor(0)
    return out


def _whole(weight: float, name: str) -> int:
    """transformers' DetrConfig types its loss coefficients as int."""
    if weight != int(weight):
        raise ValueError(f'criterion.{name}={weight}: transformers\' DETR takes whole numbers')
    return int(weight)


def build_hf_detr(plugin: nn.Module) -> nn.Module:
    """A ``DetrForObjectDetection`` with the plugin DETR's architecture,
    weights and training setup: auxiliary losses, matching costs 1 / 5 / 2
    (DETR's), the criterion's loss weights and no-object weight, dropout on attention
    weights, FFN and residuals, and backbone stages 2-4 trainable.

    Args:
        plugin (PluginDETR): a plain DETR (post-norm, learned queries
            ``PluginDETRQueries`` in one group) on an mmdet ResNet-50/101/152.

    Returns:
        DetrForObjectDetection: in train mode, as built by transformers.

    Raises:
        ValueError: another backbone, query scheme, query groups, pre-norm
            layers or losses transformers' DETR does not have, named.
    """
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

    backbone = plugin.backbone
    depth = getattr(backbone, 'depth', None)
    if depth not in _RESNET_DEPTHS:
        raise ValueError(f'only mmdet ResNet-50/101/152 backbones convert, got depth {depth}')
    # by class name: the converters do not import the model package
    scheme = type(plugin.queries).__name__
    if scheme != 'PluginDETRQueries':
        raise ValueError(f'model.queries is {scheme}: only plain learned queries '
                         '(PluginDETRQueries) have a transformers counterpart')
    if plugin.queries.num_groups != 1:
        raise ValueError(f'model.queries.num_groups={plugin.queries.num_groups}: query groups '
                         'have no transformers counterpart (use 1)')
    encoder_layer, decoder_layer = plugin.encoder.layers[0], plugin.decoder.layers[0]
    if encoder_layer.pre_norm:
        raise ValueError('pre-norm layers have no transformers counterpart (post-norm only)')
    criterion = plugin.bbox_head.criterion
    if criterion.cls_loss != 'ce' or criterion.loss_cls_weight != 1:
        raise ValueError('transformers\' DETR has softmax cross-entropy with weight 1 only')
    dropout = encoder_layer.ffn.dropout.p
    config = DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False,
        backbone_config=ResNetConfig(depths=_RESNET_DEPTHS[depth], layer_type='bottleneck',
                                     hidden_sizes=[256, 512, 1024, 2048],
                                     out_features=['stage4']),
        num_labels=plugin.bbox_head.num_classes, num_queries=plugin.num_queries,
        d_model=plugin.embed_dims, encoder_layers=len(plugin.encoder.layers),
        decoder_layers=len(plugin.decoder.layers),
        encoder_attention_heads=encoder_layer.self_attn.num_heads,
        decoder_attention_heads=decoder_layer.cross_attn.num_heads,
        encoder_ffn_dim=encoder_layer.ffn.linear1.out_features,
        decoder_ffn_dim=decoder_layer.ffn.linear1.out_features,
        dropout=dropout, attention_dropout=dropout, activation_dropout=dropout,
        auxiliary_loss=criterion.aux_loss, class_cost=1, bbox_cost=5, giou_cost=2,
        bbox_loss_coefficient=_whole(criterion.loss_bbox_weight, 'loss_bbox_weight'),
        giou_loss_coefficient=_whole(criterion.loss_iou_weight, 'loss_iou_weight'),
        eos_coefficient=criterion.no_object_weight)
    model = DetrForObjectDetection(config)
    missing, unexpected = model.load_state_dict(plugin_to_hf(plugin.state_dict()), strict=False)
    if unexpected or missing:
        raise KeyError(f'conversion left keys unmatched: missing {missing[:5]}, '
                       f'unexpected {unexpected[:5]}')
    # DETR trains backbone stages 2-4 (transformers' own freezing rule expects
    # timm names and would freeze every stage of its ResNet)
    for name, param in model.model.backbone.model.named_parameters():
        param.requires_grad_(any(f'stages.{s}.' in name for s in (1, 2, 3)))
    return model


def hf_pixel_mask(inputs: Tensor, samples: Sequence) -> Tensor:
    """transformers' ``pixel_mask`` [B, H, W] long: 1 on each image's valid
    pixels (its ``img_shape``), 0 on the batch padding.

    Args:
        inputs (Tensor): padded images [B, 3, H, W].
        samples (Sequence[DetDataSample]): with ``img_shape`` (h, w).
    """
    mask = torch.zeros(inputs.shape[0], *inputs.shape[-2:], dtype=torch.long,
                       device=inputs.device)
    for i, sample in enumerate(samples):
        h, w = sample.metainfo['img_shape'][:2]
        mask[i, :h, :w] = 1
    return mask


def hf_labels(samples: Sequence, device: torch.device) -> List[Dict[str, Tensor]]:
    """mmdet data samples -> transformers' labels: per image ``class_labels``
    [M] and ``boxes`` [M, 4] (cx, cy, w, h, normalised by the image's
    ``img_shape``), on ``device``."""
    from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
    labels = []
    for sample in samples:
        h, w = sample.metainfo['img_shape'][:2]
        boxes = bbox_xyxy_to_cxcywh(sample.gt_instances.bboxes)
        scale = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        labels.append(dict(class_labels=sample.gt_instances.labels.to(device),
                           boxes=(boxes / scale).to(device)))
    return labels

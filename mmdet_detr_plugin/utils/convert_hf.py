"""The plugin's DETR as Hugging Face ``DetrForObjectDetection``, same weights.

For side-by-side measurements (``tools/analysis_tools/benchmark_vs_mmdet.py``)
and for moving a trained model over. ``transformers`` is an optional extra:
nothing else in the plugin imports it.

Layouts (R50 shown; stage s = 0..3 is mmdet's ``layer{s+1}``)::

    plugin                                   transformers
    backbone.conv1 / bn1                     model.backbone.model.embedder.embedder.convolution / normalization
    backbone.layer{s+1}.{b}.conv{j+1} / bn{j+1}
                                             model.backbone.model.encoder.stages.{s}.layers.{b}.layer.{j}.convolution / normalization
    backbone.layer{s+1}.{b}.downsample.0 / 1 ....stages.{s}.layers.{b}.shortcut.convolution / normalization
    neck.proj                                model.input_projection
    query_embedding                          model.query_position_embeddings
    {en,de}coder.layers.{i}.self_attn.in_proj_{weight,bias}
                                             ....self_attn.{q,k,v}_proj (rows 0:d, d:2d, 2d:3d)
    ....self_attn.out_proj                   ....self_attn.o_proj
    decoder.layers.{i}.cross_attn            model.decoder.layers.{i}.encoder_attn
    encoder norm1, norm2                     self_attn_layer_norm, final_layer_norm
    decoder norm1, norm2, norm3              self_attn_layer_norm, encoder_attn_layer_norm, final_layer_norm
    ....ffn.linear1 / linear2                ....mlp.fc1 / fc2
    decoder.norm                             model.decoder.layernorm
    bbox_head.fc_cls                         class_labels_classifier
    bbox_head.bbox_mlp (3 Linear)            bbox_predictor.layers.{0,1,2}

Batch norms' ``num_batches_tracked`` have no counterpart (transformers'
frozen batch norm keeps none).
"""
import re
from typing import Dict

import torch
from torch import Tensor, nn

_RESNET_DEPTHS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


def _backbone_key(key: str) -> str:
    """One backbone key, mmdet ResNet -> transformers ResNet."""
    hf = 'model.backbone.model.'
    m = re.fullmatch(r'(conv1|bn1)\.(\w+)', key)
    if m:
        part = 'convolution' if m[1] == 'conv1' else 'normalization'
        return f'{hf}embedder.embedder.{part}.{m[2]}'
    m = re.fullmatch(r'layer(\d)\.(\d+)\.(conv|bn)(\d)\.(\w+)', key)
    if m:
        part = 'convolution' if m[3] == 'conv' else 'normalization'
        return (f'{hf}encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.layer.{int(m[4]) - 1}.'
                f'{part}.{m[5]}')
    m = re.fullmatch(r'layer(\d)\.(\d+)\.downsample\.([01])\.(\w+)', key)
    if m:
        part = 'convolution' if m[3] == '0' else 'normalization'
        return f'{hf}encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.shortcut.{part}.{m[4]}'
    raise KeyError(f'backbone key {key!r} has no transformers counterpart '
                   '(only mmdet ResNet-50/101/152 backbones convert)')


def plugin_to_hf(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Plugin DETR state dict -> ``DetrForObjectDetection`` state dict."""
    out = {}
    bbox_linears = sorted({int(k.split('.')[2]) for k in state
                           if k.startswith('bbox_head.bbox_mlp.')})
    decoder_norms = {'norm1': 'self_attn_layer_norm', 'norm2': 'encoder_attn_layer_norm',
                     'norm3': 'final_layer_norm'}
    encoder_norms = {'norm1': 'self_attn_layer_norm', 'norm2': 'final_layer_norm'}
    for key, value in state.items():
        if key.endswith('num_batches_tracked'):
            continue
        if key.startswith('backbone.'):
            out[_backbone_key(key[len('backbone.'):])] = value
            continue
        if key.startswith('neck.proj.'):
            out['model.input_projection.' + key.split('.')[-1]] = value
            continue
        if key == 'query_embedding.weight':
            out['model.query_position_embeddings.weight'] = value
            continue
        if key.startswith('decoder.norm.'):
            out['model.decoder.layernorm.' + key.split('.')[-1]] = value
            continue
        if key.startswith('bbox_head.fc_cls.'):
            out['class_labels_classifier.' + key.split('.')[-1]] = value
            continue
        if key.startswith('bbox_head.bbox_mlp.'):
            _, _, index, name = key.split('.')
            out[f'bbox_predictor.layers.{bbox_linears.index(int(index))}.{name}'] = value
            continue
        m = re.fullmatch(r'(encoder|decoder)\.layers\.(\d+)\.(\w+)\.(.+)', key)
        if not m:
            raise KeyError(f'{key!r} has no transformers counterpart')
        stack, i, module, rest = m.groups()
        prefix = f'model.{stack}.layers.{i}.'
        if module in ('self_attn', 'cross_attn'):
            name = 'self_attn' if module == 'self_attn' else 'encoder_attn'
            if rest.startswith('in_proj_'):
                kind = rest[len('in_proj_'):]  # weight | bias
                for proj, chunk in zip(('q_proj', 'k_proj', 'v_proj'), value.chunk(3, dim=0)):
                    out[f'{prefix}{name}.{proj}.{kind}'] = chunk
            else:  # out_proj.weight / out_proj.bias
                out[f'{prefix}{name}.o_proj.{rest.split(".")[-1]}'] = value
        elif module == 'ffn':
            linear, kind = rest.split('.')
            out[f'{prefix}mlp.{"fc1" if linear == "linear1" else "fc2"}.{kind}'] = value
        elif module.startswith('norm'):
            norms = decoder_norms if stack == 'decoder' else encoder_norms
            out[f'{prefix}{norms[module]}.{rest}'] = value
        else:
            raise KeyError(f'{key!r} has no transformers counterpart')
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
        plugin (PluginDETR): a plain DETR (post-norm, one query group, no
            anchor points) on an mmdet ResNet-50/101/152.
    """
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

    backbone = plugin.backbone
    depth = getattr(backbone, 'depth', None)
    if depth not in _RESNET_DEPTHS:
        raise ValueError(f'only mmdet ResNet-50/101/152 backbones convert, got depth {depth}')
    encoder_layer, decoder_layer = plugin.encoder.layers[0], plugin.decoder.layers[0]
    if (getattr(plugin, 'num_query_groups', 1) != 1 or getattr(plugin, 'anchor_points', False)
            or encoder_layer.pre_norm):
        raise ValueError('only plain DETR (post-norm, no query groups or anchor points) '
                         'has a transformers counterpart')
    criterion = plugin.bbox_head.criterion
    if criterion.cls_loss != 'ce' or criterion.loss_cls_weight != 1:
        raise ValueError('transformers\' DETR has softmax cross-entropy with weight 1 only')
    dropout = encoder_layer.dropout
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


def hf_pixel_mask(inputs: Tensor, samples) -> Tensor:
    """transformers' ``pixel_mask`` [B, H, W] long: 1 on each image's valid
    pixels (its ``img_shape``), 0 on the batch padding."""
    mask = torch.zeros(inputs.shape[0], *inputs.shape[-2:], dtype=torch.long,
                       device=inputs.device)
    for i, sample in enumerate(samples):
        h, w = sample.metainfo['img_shape'][:2]
        mask[i, :h, :w] = 1
    return mask


def hf_labels(samples, device) -> list:
    """mmdet data samples -> transformers' labels (classes, normalised
    cx, cy, w, h boxes), image sizes from each sample's ``img_shape``."""
    from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
    labels = []
    for sample in samples:
        h, w = sample.metainfo['img_shape'][:2]
        boxes = bbox_xyxy_to_cxcywh(sample.gt_instances.bboxes)
        scale = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        labels.append(dict(class_labels=sample.gt_instances.labels.to(device),
                           boxes=(boxes / scale).to(device)))
    return labels

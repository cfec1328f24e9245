"""Shared fixtures: small detector configs and hand-made batches."""
import copy
from typing import List, Sequence, Tuple

import pytest
import torch
from mmengine.structures import InstanceData

import mmdet_detr_plugin  # noqa: F401  (registers the plugin)
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules

register_all_modules(init_default_scope=True)

EMBED_DIMS = 64

# A small DETR in the plugin's parts: ResNet-18 without pretrained weights.
SMALL_PLUGIN_DETR = dict(
    type='PluginDETR',
    num_queries=10,
    backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, ), frozen_stages=1,
                  norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True,
                  style='pytorch', init_cfg=None),
    neck=dict(type='PluginInputProjection', in_channels=512, out_channels=EMBED_DIMS),
    encoder=dict(num_layers=2, embed_dims=EMBED_DIMS, num_heads=4, feedforward_channels=128,
                 dropout=0.0),
    decoder=dict(num_layers=3, embed_dims=EMBED_DIMS, num_heads=4, feedforward_channels=128,
                 dropout=0.0),
    positional_encoding=dict(num_feats=EMBED_DIMS // 2, normalize=True),
    bbox_head=dict(type='PluginDETRHead', num_classes=5, embed_dims=EMBED_DIMS),
    train_cfg=dict(assigner=dict(type='PluginHungarianAssigner')),
    test_cfg=dict(max_per_img=10))


def _mmdet_attn(d: int) -> dict:
    return dict(embed_dims=d, num_heads=4, dropout=0.0, batch_first=True)


def _mmdet_ffn(d: int) -> dict:
    return dict(embed_dims=d, feedforward_channels=128, num_fcs=2, ffn_drop=0.0,
                act_cfg=dict(type='ReLU', inplace=True))


# The same model in mmdet's own DETR parts.
SMALL_MMDET_DETR = dict(
    type='DETR',
    num_queries=10,
    backbone=SMALL_PLUGIN_DETR['backbone'],
    neck=dict(type='ChannelMapper', in_channels=[512], kernel_size=1, out_channels=EMBED_DIMS,
              act_cfg=None, norm_cfg=None, num_outs=1),
    encoder=dict(num_layers=2, layer_cfg=dict(self_attn_cfg=_mmdet_attn(EMBED_DIMS),
                                              ffn_cfg=_mmdet_ffn(EMBED_DIMS))),
    decoder=dict(num_layers=3, layer_cfg=dict(self_attn_cfg=_mmdet_attn(EMBED_DIMS),
                                              cross_attn_cfg=_mmdet_attn(EMBED_DIMS),
                                              ffn_cfg=_mmdet_ffn(EMBED_DIMS)),
                 return_intermediate=True),
    positional_encoding=dict(num_feats=EMBED_DIMS // 2, normalize=True),
    bbox_head=dict(type='DETRHead', num_classes=5, embed_dims=EMBED_DIMS,
                   loss_cls=dict(type='CrossEntropyLoss', bg_cls_weight=0.1,
                                 use_sigmoid=False, loss_weight=1.0, class_weight=1.0),
                   loss_bbox=dict(type='L1Loss', loss_weight=5.0),
                   loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
        dict(type='ClassificationCost', weight=1.),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='IoUCost', iou_mode='giou', weight=2.0)])),
    test_cfg=dict(max_per_img=10))


def make_batch(img_shapes: Sequence[Tuple[int, int]], num_gts: Sequence[int], num_classes: int = 5,
               seed: int = 0) -> Tuple[torch.Tensor, List[DetDataSample]]:
    """Random padded images and boxes: inputs [B, 3, H, W], data samples with
    ``img_shape``, ``batch_input_shape``, ``pad_shape``, ``scale_factor`` and gt xyxy boxes."""
    gen = torch.Generator().manual_seed(seed)
    pad_h = max(h for h, _ in img_shapes)
    pad_w = max(w for _, w in img_shapes)
    inputs = torch.zeros(len(img_shapes), 3, pad_h, pad_w)
    samples = []
    for i, ((h, w), m) in enumerate(zip(img_shapes, num_gts)):
        inputs[i, :, :h, :w] = torch.randn(3, h, w, generator=gen)
        xy = torch.rand(m, 2, generator=gen) * torch.tensor([w * 0.6, h * 0.6])
        wh = (torch.rand(m, 2, generator=gen) * 0.3 + 0.05) * torch.tensor([w, h])
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             batch_input_shape=(pad_h, pad_w),
                                             pad_shape=(pad_h, pad_w), scale_factor=(1.0, 1.0),
                                             img_id=i))
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], dim=1),
            labels=torch.randint(0, num_classes, (m, ), generator=gen))
        samples.append(sample)
    return inputs, samples


@pytest.fixture
def small_plugin_cfg() -> dict:
    return copy.deepcopy(SMALL_PLUGIN_DETR)


@pytest.fixture
def small_mmdet_cfg() -> dict:
    return copy.deepcopy(SMALL_MMDET_DETR)

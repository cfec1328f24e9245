import copy

import torch

from mmdet.registry import MODELS

from conftest import SMALL_PLUGIN_DETR, make_batch


def _build(**overrides):
    cfg = copy.deepcopy(SMALL_PLUGIN_DETR)
    cfg.update(overrides)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_channels_last_backbone_gives_the_same_outputs_and_keys():
    fast, plain = _build(), _build(accel=dict(channels_last=False))
    plain.load_state_dict(fast.state_dict())
    assert fast.accel.channels_last and not plain.accel.channels_last
    conv = fast.backbone.layer2[0].conv2.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert plain.backbone.layer2[0].conv2.weight.is_contiguous()
    assert {k: v.shape for k, v in fast.state_dict().items()} == \
        {k: v.shape for k, v in plain.state_dict().items()}

    inputs, samples = make_batch([(64, 96), (48, 80)], num_gts=[2, 1])
    fast.eval()
    plain.eval()
    with torch.no_grad():
        cls_fast, box_fast = fast._forward(inputs, samples)
        cls_plain, box_plain = plain._forward(inputs, samples)

    assert torch.allclose(cls_fast, cls_plain, atol=1e-5)
    assert torch.allclose(box_fast, box_plain, atol=1e-6)
    # training: same losses and gradients
    fast.train()
    plain.train()
    loss_fast = sum(fast.loss(inputs, samples).values())
    loss_plain = sum(plain.loss(inputs, samples).values())
    assert abs(loss_fast.item() - loss_plain.item()) < 1e-5
    loss_fast.backward()
    loss_plain.backward()
    g_fast = fast.backbone.layer4[0].downsample[0].weight.grad
    g_plain = plain.backbone.layer4[0].downsample[0].weight.grad
    assert torch.allclose(g_fast, g_plain, atol=1e-6 * g_plain.abs().max().item() + 1e-9)

    # a checkpoint saved from a plain-layout model loads into the layout kept
    fast.load_state_dict({k: v.contiguous() for k, v in plain.state_dict().items()})
    assert fast.backbone.layer2[0].conv2.weight.is_contiguous(memory_format=torch.channels_last)


def test_not_applied_to_backbones_with_other_convolutions():
    backbone = copy.deepcopy(SMALL_PLUGIN_DETR['backbone'])
    backbone.update(depth=50, dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),
                    stage_with_dcn=(False, False, True, True))
    model = _build(backbone=backbone, neck=dict(type='PluginInputProjection', in_channels=2048,
                                                out_channels=64))
    assert not model.accel.channels_last
    assert model.backbone.layer2[0].conv2.weight.is_contiguous()

"""The plugin's parts mix with mmdet's models, and mmdet's parts with the plugin's."""
import copy

import torch

from mmdet.registry import MODELS

from conftest import make_batch


def _run_loss_and_predict(model, num_classes=5):
    inputs, samples = make_batch([(64, 64), (64, 96)], num_gts=[1, 3], num_classes=num_classes)
    model.train()
    losses = model.loss(inputs, samples)
    assert torch.isfinite(sum(losses.values()))
    model.eval()
    with torch.no_grad():
        return losses, model.predict(inputs, samples)


def test_plugin_detector_with_resnet101(small_plugin_cfg):
    small_plugin_cfg['backbone']['depth'] = 101
    small_plugin_cfg['neck']['in_channels'] = 2048
    _run_loss_and_predict(MODELS.build(small_plugin_cfg))


def test_plugin_detector_with_swin(small_plugin_cfg):
    small_plugin_cfg['backbone'] = dict(
        type='SwinTransformer', embed_dims=24, depths=(1, 1, 1, 1), num_heads=(1, 2, 3, 4),
        window_size=4, out_indices=(3, ), init_cfg=None)
    small_plugin_cfg['neck']['in_channels'] = 24 * 8
    _, results = _run_loss_and_predict(MODELS.build(small_plugin_cfg))
    assert results[0].pred_instances.scores.shape == (10, )


def test_mmdet_channel_mapper_and_positional_encoding_in_plugin_detector(small_plugin_cfg):
    mixed = copy.deepcopy(small_plugin_cfg)
    mixed['neck'] = dict(type='ChannelMapper', in_channels=[512], kernel_size=1,
                         out_channels=64, act_cfg=None, norm_cfg=None, num_outs=1)
    mixed['positional_encoding'] = dict(type='SinePositionalEncoding', num_feats=32,
                                        normalize=True)
    torch.manual_seed(0)
    plugin = MODELS.build(small_plugin_cfg).eval()
    model = MODELS.build(mixed).eval()
    # same weights, the neck renamed: identical outputs
    state = {k.replace('neck.proj.', 'neck.convs.0.conv.'): v
             for k, v in plugin.state_dict().items()}
    model.load_state_dict(state, strict=True)
    inputs, samples = make_batch([(64, 64), (48, 64)], num_gts=[1, 2])
    with torch.no_grad():
        out_a = plugin._forward(inputs, samples)
        out_b = model._forward(inputs, samples)
    assert torch.allclose(out_a[0], out_b[0], atol=1e-5)
    assert torch.allclose(out_a[1], out_b[1], atol=1e-5)


def test_plugin_assigner_inside_mmdet_detr_head(small_mmdet_cfg):
    """mmdet's DETRHead with the plugin's assigner gives mmdet's own losses."""
    torch.manual_seed(0)
    with_plugin = copy.deepcopy(small_mmdet_cfg)  # mmdet's head edits its config in place
    reference = MODELS.build(small_mmdet_cfg).eval()
    with_plugin['train_cfg'] = dict(assigner=dict(type='PluginHungarianAssigner'))
    model = MODELS.build(with_plugin).eval()
    model.load_state_dict(reference.state_dict())
    inputs, samples = make_batch([(64, 80), (80, 64)], num_gts=[3, 2], seed=4)
    with torch.no_grad():
        expected = reference.loss(inputs, samples)
        got = model.loss(inputs, samples)
    for key in expected:
        assert torch.allclose(got[key], expected[key], atol=1e-6), key


def test_mmdet_detr_head_in_plugin_detector(small_plugin_cfg, small_mmdet_cfg):
    """mmdet's DETRHead (with its own assigner) on top of the plugin's detector."""
    small_plugin_cfg['bbox_head'] = small_mmdet_cfg['bbox_head']
    small_plugin_cfg['train_cfg'] = small_mmdet_cfg['train_cfg']
    losses, _ = _run_loss_and_predict(MODELS.build(small_plugin_cfg))
    assert 'd1.loss_iou' in losses

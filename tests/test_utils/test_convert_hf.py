"""The plugin's DETR as transformers' DetrForObjectDetection: same outputs,
losses and gradients from the converted weights."""
import copy

import pytest
import torch

from mmdet.registry import MODELS

from conftest import SMALL_PLUGIN_DETR, make_batch

transformers = pytest.importorskip('transformers')


def _plugin_r50(**overrides):
    cfg = copy.deepcopy(SMALL_PLUGIN_DETR)
    cfg['backbone'].update(depth=50)
    cfg['neck'].update(in_channels=2048)
    cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    gen = torch.Generator().manual_seed(1)
    for m in model.backbone.modules():  # non-trivial frozen statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model


def _hf_inputs(inputs, samples):
    from mmdet_detr_plugin.utils.convert_hf import hf_labels, hf_pixel_mask
    return dict(pixel_values=inputs, pixel_mask=hf_pixel_mask(inputs, samples),
                labels=hf_labels(samples, 'cpu'))


def test_same_outputs_losses_and_gradients():
    from mmdet_detr_plugin.utils.convert_hf import build_hf_detr
    plugin = _plugin_r50()
    hf = build_hf_detr(plugin)
    inputs, samples = make_batch([(96, 128), (80, 112)], num_gts=[3, 2], num_classes=5)
    plugin.eval()
    hf.eval()
    with torch.no_grad():
        cls, boxes = plugin._forward(inputs, samples)
        out = hf(**_hf_inputs(inputs, samples))
    assert out.logits.shape == (2, 10, 6)
    assert (out.logits - cls[-1]).abs().max() < 1e-5 * max(cls.abs().max(), 1)
    assert (out.pred_boxes - boxes[-1]).abs().max() < 1e-6

    # train mode (dropout 0, frozen batch norm): the total loss (every layer's
    # CE + 5 L1 + 2 GIoU) and the gradients agree
    plugin.train()
    hf.train()
    loss = sum(plugin.loss(inputs, samples).values())
    loss_hf = hf(**_hf_inputs(inputs, samples)).loss
    assert abs(loss.item() - loss_hf.item()) < 1e-5 * loss.item()
    loss.backward()
    loss_hf.backward()
    pairs = [(plugin.neck.proj.weight, hf.model.input_projection.weight),
             (plugin.bbox_head.fc_cls.weight, hf.class_labels_classifier.weight),
             (plugin.query_embedding.weight, hf.model.query_position_embeddings.weight),
             (plugin.backbone.layer4[0].downsample[0].weight,  # the residual branches start at 0
              hf.model.backbone.model.encoder.stages[3].layers[0].shortcut.convolution.weight)]
    for ours, theirs in pairs:
        assert ours.grad.abs().max() > 0
        assert (ours.grad - theirs.grad).abs().max() < 1e-4 * ours.grad.abs().max()
    # DETR's trainable set: backbone stages 2-4, not the stem or stage 1
    trainable = sum(p.numel() for p in plugin.parameters() if p.requires_grad)
    assert trainable == sum(p.numel() for p in hf.parameters() if p.requires_grad)
    stem = hf.model.backbone.model.embedder.embedder.convolution.weight
    assert not stem.requires_grad


def test_unsupported_models_are_refused_by_name():
    from mmdet_detr_plugin.utils.convert_hf import build_hf_detr
    cfg = copy.deepcopy(SMALL_PLUGIN_DETR)
    with pytest.raises(ValueError, match='ResNet-50/101/152'):
        build_hf_detr(MODELS.build(cfg))  # ResNet-18
    with pytest.raises(ValueError, match='query groups'):
        build_hf_detr(_plugin_r50(num_query_groups=2))

import copy

import torch
import torchvision
from torch import nn

from mmcv.cnn import ConvModule
from mmdet.models.backbones import ResNet, ResNetV1d
from mmdet_detr_plugin.accel.folded_bn import (FoldedBatchNorm2d, FoldedConv2d,
                                               fold_frozen_batchnorm)


def _random_bn_stats(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial statistics and affine parameters, so a wrong fold shows."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)


def _frozen_resnet(cls=ResNet, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    model = cls(depth=50, out_indices=(3, ), frozen_stages=1,
                norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True, **kwargs)
    _random_bn_stats(model)
    return model


def _folded_eval_resnet() -> nn.Module:
    model = _frozen_resnet()
    fold_frozen_batchnorm(model)
    model.eval()  # mmdet's ResNet.train() returns None, so no chaining
    return model


def test_folding_keeps_outputs_gradients_and_state_dict_keys():
    reference = _frozen_resnet()
    folded = copy.deepcopy(reference)
    keys = list(folded.state_dict())
    # the stem, 16 blocks x 3 and 4 downsample shortcuts
    assert fold_frozen_batchnorm(folded) == 1 + 16 * 3 + 4
    assert fold_frozen_batchnorm(folded) == 0  # idempotent
    assert list(folded.state_dict()) == keys
    assert isinstance(folded.layer2[0].conv2, FoldedConv2d)
    assert isinstance(folded.layer2[0].downsample[1], FoldedBatchNorm2d)

    reference.train()  # norm_eval: batch norms stay in eval mode
    folded.train()
    x = torch.randn(2, 3, 64, 96)
    out_ref, out = reference(x)[0], folded(x)[0]
    assert out.shape == (2, 2048, 2, 3)
    scale = out_ref.abs().max()
    assert (out - out_ref).abs().max() / scale < 1e-5
    out_ref.square().sum().backward()
    out.square().sum().backward()
    for (name, p_ref), p in zip(reference.named_parameters(), folded.parameters()):
        if p_ref.requires_grad:
            rel = (p.grad - p_ref.grad).abs().max() / p_ref.grad.abs().max()
            assert rel < 1e-4, name
        else:
            assert p.grad is None, name


def test_batchnorm_in_train_mode_is_not_folded():
    model = ResNet(depth=18, out_indices=(3, ), norm_eval=False)
    reference = copy.deepcopy(model)
    fold_frozen_batchnorm(model)
    model.train()
    reference.train()
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(model(x)[0], reference(x)[0], atol=1e-5)
    # the running statistics were updated, as batch norm in train mode does
    assert torch.equal(model.bn1.running_mean, reference.bn1.running_mean)
    assert not torch.equal(model.bn1.running_mean, torch.zeros(64))


def test_inference_cache_follows_weight_updates():
    model = _folded_eval_resnet()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[0]
        model.layer4[2].conv3.weight.mul_(2.)  # in-place, as an optimizer step
        model.layer4[2].bn3.running_var.mul_(4.)  # as a checkpoint load (copy_)
        after = model(x)[0]
    unfolded = _frozen_resnet()
    unfolded.load_state_dict(model.state_dict())
    unfolded.eval()
    with torch.no_grad():
        expected = unfolded(x)[0]
    assert not torch.allclose(before, after)
    assert (after - expected).abs().max() / expected.abs().max() < 1e-5


def test_deep_stem_conv_module_and_torchvision_layouts():
    deep = _frozen_resnet(ResNetV1d)  # deep stem: Sequential(conv, bn, relu, ...)
    reference = copy.deepcopy(deep)
    folded = fold_frozen_batchnorm(deep)
    assert folded == 3 + 16 * 3 + 4
    deep.eval()
    reference.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(deep(x)[0], reference(x)[0], rtol=1e-4, atol=1e-4)

    module = ConvModule(8, 16, 3, padding=1, norm_cfg=dict(type='BN'))
    _random_bn_stats(module)
    module.eval()
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        expected = module(x)
        assert fold_frozen_batchnorm(module) == 1
        assert torch.allclose(module(x), expected, atol=1e-5)

    # a torchvision ResNet has no mmdet blocks: only its Sequential shortcuts fold
    tv = torchvision.models.resnet18(weights=None)
    assert fold_frozen_batchnorm(tv) == 3


def test_detector_folds_by_default_and_can_opt_out():
    from mmdet.registry import MODELS
    from conftest import SMALL_PLUGIN_DETR
    cfg = copy.deepcopy(SMALL_PLUGIN_DETR)
    model = MODELS.build(cfg)
    assert any(isinstance(m, FoldedConv2d) for m in model.backbone.modules())
    cfg['accel'] = dict(fold_frozen_bn=False)
    model = MODELS.build(cfg)
    assert not any(isinstance(m, FoldedConv2d) for m in model.modules())


def test_deepcopy_and_pickle_keep_the_pairing():
    import io
    model = _folded_eval_resnet()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)[0]  # fills the inference cache
    copied = copy.deepcopy(model)
    assert copied.conv1._folded_bn is copied.bn1
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert loaded.conv1._folded_bn is loaded.bn1
    with torch.no_grad():
        copied.bn1.running_mean.add_(1.)  # the copy's BN, not the original's
        assert torch.equal(model(x)[0], expected)
        assert not torch.allclose(copied(x)[0], expected)
        assert torch.allclose(loaded(x)[0], expected)


def test_packed_weights_in_inference_and_frozen_stages():
    """Where no gradient flows, channels-last CPU inputs run on weights packed
    in oneDNN's layout: the same outputs as the plain folded convolution and
    as the unfolded network, refreshed after a weight update, and never on a
    path a gradient has to cross."""
    reference = _frozen_resnet()
    model = copy.deepcopy(reference)
    fold_frozen_batchnorm(model)
    model.to(memory_format=torch.channels_last).eval()
    reference.eval()
    x = torch.randn(2, 3, 96, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        packed = model(x)[0]
        assert model.layer4[2].conv3._fold_cache[3] is not None  # packed weight kept
        expected = reference(x)[0]
        with torch.backends.mkldnn.flags(enabled=False):  # no oneDNN: nothing packed
            plain = model(x)[0]
    torch.testing.assert_close(packed, plain, rtol=1e-5, atol=1e-5 * plain.abs().max().item())
    assert (packed - expected).abs().max() / expected.abs().max() < 1e-5

    # a weight update repacks
    with torch.no_grad():
        model.layer4[2].conv3.weight.mul_(2.)
        reference.layer4[2].conv3.weight.mul_(2.)
        updated = model(x)[0]
        expected = reference(x)[0]
    assert (updated - expected).abs().max() / expected.abs().max() < 1e-5
    copy.deepcopy(model)  # a packed cache does not stop a copy (EMA hooks deep-copy)

    # another input shape repacks (a weight packed for one shape is slow on others)
    small = torch.randn(1, 3, 64, 96).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = model(small)[0]
        expected = reference(small)[0]
    assert model.conv1._fold_cache[3][0] == [1, 3, 64, 96]
    assert (got - expected).abs().max() / expected.abs().max() < 1e-5

    # frozen stage 1 but an input that needs its gradient: the plain path
    model.train()
    reference.train()
    xg = x.clone().requires_grad_(True)
    model(xg)[0].square().mean().backward()
    grad = xg.grad.clone()
    xg.grad = None
    reference(xg)[0].square().mean().backward()
    assert (grad - xg.grad).abs().max() / xg.grad.abs().max() < 1e-4

"""accelerate(): the one transform. 'reference' leaves the plain model,
'default' swaps in the faster forms; keys, parameters, random init and
outputs stay the same; bad settings get one error naming the key."""
import copy

import pytest
import torch
from torch import nn

from mmdet.registry import MODELS
from mmdet_detr_plugin.accel import PRESETS, accelerate, cpu, parse_accel
from mmdet_detr_plugin.accel.dropout import FastDropout
from mmdet_detr_plugin.accel.folded_bn import FoldedConv2d
from mmdet_detr_plugin.accel.fused_costs import FusedDetrCost
from mmdet_detr_plugin.accel.linear import OneDnnLinear
from mmdet_detr_plugin.accel.replace import rebuild
from mmdet_detr_plugin.accel.transformer import FastDetrAttention, FastDetrFFN, PackedEncoder
from mmdet_detr_plugin.models.layers import DetrAttention, DetrFFN

from conftest import SMALL_PLUGIN_DETR, make_batch

ACCEL_CLASSES = (FastDropout, FoldedConv2d, OneDnnLinear, FastDetrAttention, FastDetrFFN,
                 PackedEncoder)


def build(accel, **overrides):
    cfg = copy.deepcopy(SMALL_PLUGIN_DETR)
    cfg.update(accel=accel, **overrides)
    cfg['encoder']['dropout'] = cfg['decoder']['dropout'] = 0.1
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_reference_is_the_plain_model():
    model = build('reference')
    assert model.accel == PRESETS['reference']
    assert not [m for m in model.modules() if isinstance(m, ACCEL_CLASSES)]
    assert type(model.encoder.layers[0].self_attn) is DetrAttention
    assert type(model.decoder.layers[0].ffn.dropout) is nn.Dropout
    assigner = model.bbox_head.assigner
    assert assigner.cost_kernel is None and assigner.solver.name == 'scipy'
    conv = model.backbone.layer2[0].conv2.weight
    assert conv.is_contiguous()  # no channels-last layout


def test_default_swaps_in_the_faster_forms_with_the_same_keys_and_init():
    # a channels-last backbone is initialised in another memory order (the
    # same distribution, other values): the rest draws exactly the same numbers
    fast, plain = build(dict(channels_last=False)), build('reference')
    assert type(fast.encoder) is PackedEncoder
    assert type(fast.decoder.layers[0].self_attn) is FastDetrAttention
    assert type(fast.decoder.layers[0].ffn) is FastDetrFFN
    assert type(fast.decoder.layers[0].dropout2) is FastDropout
    assert isinstance(fast.backbone.layer1[0].conv1, FoldedConv2d)
    assert fast.accel.linear in ('onednn', 'torch') and not fast.accel.channels_last
    # the same keys, and the same random init: the transform draws no random numbers
    state, plain_state = fast.state_dict(), plain.state_dict()
    assert list(state) == list(plain_state)
    for key in state:
        assert torch.equal(state[key], plain_state[key]), key
    # and the same outputs, up to float rounding
    inputs, samples = make_batch([(64, 96), (48, 80)], num_gts=[2, 1])
    fast.eval()
    plain.eval()
    with torch.no_grad():
        for a, b in zip(fast._forward(inputs, samples), plain._forward(inputs, samples)):
            assert torch.allclose(a, b, atol=1e-5)


def test_oneDNN_linear_layers_follow_the_measurement(monkeypatch):
    monkeypatch.setattr(cpu, 'onednn_linear_speedup', lambda: 2.0)
    if cpu.choose_linear('auto') == 'onednn':  # this build has the op
        model = build('default')
        assert model.accel.linear == 'onednn'
        assert type(model.bbox_head.fc_cls) is OneDnnLinear
        assert type(model.queries.embedding) is nn.Embedding
    monkeypatch.setattr(cpu, 'onednn_linear_speedup', lambda: 1.1)
    assert cpu.choose_linear('auto') == 'torch'
    model = build('default')
    assert model.accel.linear == 'torch' and type(model.bbox_head.fc_cls) is nn.Linear
    assert cpu.choose_linear('torch') == 'torch'


def test_matching_kernels_on_the_assigner():
    pytest.importorskip('numba')
    model = build(dict(matching_costs='fused', solver='numba'))
    assigner = model.bbox_head.assigner
    assert isinstance(assigner.cost_kernel, FusedDetrCost)
    assert assigner.cost_kernel.min_elements == 0
    assert assigner.solver.name == 'numba'
    auto = build('default').bbox_head.assigner
    assert auto.cost_kernel.min_elements > 0 and auto.solver.name == 'auto'


def test_rebuild_shares_parameters_and_keeps_flags():
    torch.manual_seed(0)
    plain = DetrFFN(8, 16, 0.1).eval()
    plain.linear1.weight.requires_grad_(False)
    state = torch.get_rng_state()
    fast = rebuild(FastDetrFFN, plain, 8, 16, 0.1)
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn
    assert fast.linear1 is plain.linear1 and not fast.training
    assert not fast.linear1.weight.requires_grad


@pytest.mark.parametrize('accel,message', [
    ('fast', "model.accel must be one of \\['default', 'reference'\\] or a dict"),
    (dict(gemm='onednn'), 'model.accel.gemm is not a kernel; the kernels are linear, dropout'),
    (dict(linear='mkl'), "model.accel.linear must be one of \\('auto', 'onednn', 'torch'\\)"),
    (dict(fold_frozen_bn='yes'), 'model.accel.fold_frozen_bn must be one of'),
    (dict(base='fast'), 'model.accel.base must be one of'),
])
def test_bad_settings_name_the_key(accel, message):
    with pytest.raises(ValueError, match=message):
        parse_accel(accel)


def test_presets_and_changes():
    assert parse_accel(None) == PRESETS['default']
    changed = parse_accel(dict(base='reference', skip_padding=True))
    assert changed.skip_padding and not changed.fused_layers and changed.solver == 'scipy'


def test_assigner_solver_and_reference_conflict_is_named():
    pytest.importorskip('numba')
    train_cfg = dict(assigner=dict(type='PluginHungarianAssigner', solver='numba'))
    assert build('default', train_cfg=train_cfg).bbox_head.assigner.solver.name == 'numba'
    with pytest.raises(ValueError, match="model.accel.solver='scipy'.*'numba'"):
        build('reference', train_cfg=train_cfg)


def test_missing_numba_is_named(monkeypatch):
    monkeypatch.setitem(__import__('sys').modules, 'numba', None)  # as if not installed
    with pytest.raises(ImportError, match="model.accel.dropout='numba'.*pip install numba"):
        build(dict(dropout='numba'))
    # 'auto' does without numba: eager costs and scipy's solver
    assigner = build('default').bbox_head.assigner
    assert assigner.cost_kernel is None and assigner.solver.name == 'scipy'


def test_accelerate_applies_to_mmdet_models_too(small_mmdet_cfg):
    """mmdet's own DETR: its frozen batch norms fold and its backbone goes
    channels-last; its own transformer modules are left as they are."""
    torch.manual_seed(0)
    model = MODELS.build(small_mmdet_cfg)
    reference = copy.deepcopy(model)
    settings = accelerate(model, 'default')
    assert settings.channels_last
    assert any(isinstance(m, FoldedConv2d) for m in model.backbone.modules())
    inputs, samples = make_batch([(64, 64)], num_gts=[1])
    model.eval()
    reference.eval()
    with torch.no_grad():
        for a, b in zip(model._forward(inputs, samples), reference._forward(inputs, samples)):
            assert torch.allclose(a, b, atol=1e-5)

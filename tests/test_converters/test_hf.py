"""PluginDETR <-> transformers' DetrForObjectDetection: names both ways, and
the same outputs, losses and gradients from the converted weights."""
import copy
import importlib.util
import os
import os.path as osp
import runpy
import subprocess
import sys
import textwrap
from collections import OrderedDict

import pytest
import torch

from mmdet.registry import MODELS
from mmdet_detr_plugin.converters import build_hf_detr, hf_labels, hf_pixel_mask, hf_to_plugin, \
    plugin_to_hf

from conftest import SMALL_PLUGIN_DETR, make_batch

needs_transformers = pytest.mark.skipif(importlib.util.find_spec('transformers') is None,
                                        reason='transformers is an optional extra')
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'model_converters', 'hf_detr_convert.py')
HF_RESNET = 'model.backbone.model'
# (plugin, transformers): one key per kind of rule
PAIRS = [
    ('backbone.conv1.weight', f'{HF_RESNET}.embedder.embedder.convolution.weight'),
    ('backbone.bn1.running_mean', f'{HF_RESNET}.embedder.embedder.normalization.running_mean'),
    ('backbone.layer1.0.conv3.weight',
     f'{HF_RESNET}.encoder.stages.0.layers.0.layer.2.convolution.weight'),
    ('backbone.layer3.22.bn2.bias',
     f'{HF_RESNET}.encoder.stages.2.layers.22.layer.1.normalization.bias'),
    ('backbone.layer4.0.downsample.0.weight',
     f'{HF_RESNET}.encoder.stages.3.layers.0.shortcut.convolution.weight'),
    ('backbone.layer2.0.downsample.1.running_var',
     f'{HF_RESNET}.encoder.stages.1.layers.0.shortcut.normalization.running_var'),
    ('neck.proj.bias', 'model.input_projection.bias'),
    ('queries.embedding.weight', 'model.query_position_embeddings.weight'),
    ('encoder.layers.1.self_attn.out_proj.weight',
     'model.encoder.layers.1.self_attn.o_proj.weight'),
    ('decoder.layers.0.cross_attn.out_proj.bias',
     'model.decoder.layers.0.encoder_attn.o_proj.bias'),
    ('encoder.layers.0.ffn.linear1.weight', 'model.encoder.layers.0.mlp.fc1.weight'),
    ('decoder.layers.2.ffn.linear2.bias', 'model.decoder.layers.2.mlp.fc2.bias'),
    ('encoder.layers.0.norm1.weight', 'model.encoder.layers.0.self_attn_layer_norm.weight'),
    ('encoder.layers.0.norm2.bias', 'model.encoder.layers.0.final_layer_norm.bias'),
    ('decoder.layers.1.norm1.bias', 'model.decoder.layers.1.self_attn_layer_norm.bias'),
    ('decoder.layers.1.norm2.weight', 'model.decoder.layers.1.encoder_attn_layer_norm.weight'),
    ('decoder.layers.1.norm3.weight', 'model.decoder.layers.1.final_layer_norm.weight'),
    ('decoder.norm.weight', 'model.decoder.layernorm.weight'),
    ('bbox_head.fc_cls.weight', 'class_labels_classifier.weight'),
    ('bbox_head.bbox_mlp.2.bias', 'bbox_predictor.layers.2.bias'),
]


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
    return dict(pixel_values=inputs, pixel_mask=hf_pixel_mask(inputs, samples),
                labels=hf_labels(samples, 'cpu'))


def _tiny_hf_detr() -> torch.nn.Module:
    """transformers' DETR, small: a one-block-per-stage bottleneck ResNet,
    d = 32, 1 + 2 layers, 5 queries, 3 classes; random weights."""
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig
    torch.manual_seed(0)
    config = DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False,
        backbone_config=ResNetConfig(depths=[1, 1, 1, 1], layer_type='bottleneck',
                                     embedding_size=16, hidden_sizes=[32, 64, 128, 256],
                                     out_features=['stage4']),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=5,
        num_labels=3)
    return DetrForObjectDetection(config)


def test_each_rule_renames_exactly_both_ways():
    plugin_keys, hf_keys = zip(*PAIRS)
    values = [torch.full((1, ), float(i)) for i in range(len(PAIRS))]
    to_hf = plugin_to_hf(OrderedDict(zip(plugin_keys, values)))
    assert list(to_hf) == list(hf_keys)
    assert all(a is b for a, b in zip(to_hf.values(), values))  # tensors shared
    back = hf_to_plugin(to_hf)
    # a zero counter after each backbone batch norm's running_var
    expected = list(plugin_keys)
    at = expected.index('backbone.layer2.0.downsample.1.running_var')
    expected.insert(at + 1, 'backbone.layer2.0.downsample.1.num_batches_tracked')
    assert list(back) == expected
    assert back['backbone.layer2.0.downsample.1.num_batches_tracked'].item() == 0


def test_packed_attention_splits_into_q_k_v_rows_and_back():
    """in_proj_weight [3d, d] -> q, k, v [d, d] (rows 0:d, d:2d, 2d:3d), d = 2."""
    weight, bias = torch.arange(12.).view(6, 2), torch.arange(6.)
    state = OrderedDict([('decoder.layers.0.cross_attn.in_proj_weight', weight),
                         ('decoder.layers.0.cross_attn.in_proj_bias', bias),
                         ('backbone.bn1.num_batches_tracked', torch.tensor(7))])
    hf = plugin_to_hf(state)
    attn = 'model.decoder.layers.0.encoder_attn'
    assert list(hf) == [f'{attn}.{p}_proj.{k}' for k in ('weight', 'bias') for p in 'qkv']
    assert hf[f'{attn}.q_proj.weight'].tolist() == [[0., 1.], [2., 3.]]
    assert hf[f'{attn}.k_proj.weight'].tolist() == [[4., 5.], [6., 7.]]
    assert hf[f'{attn}.v_proj.weight'].tolist() == [[8., 9.], [10., 11.]]
    assert hf[f'{attn}.v_proj.bias'].tolist() == [4., 5.]
    back = hf_to_plugin(hf)
    assert list(back) == list(state)[:2]
    assert torch.equal(back['decoder.layers.0.cross_attn.in_proj_weight'], weight)
    assert torch.equal(back['decoder.layers.0.cross_attn.in_proj_bias'], bias)


def test_keys_without_counterpart_are_named():
    with pytest.raises(KeyError, match=r'1 key\(s\) have no transformers counterpart: '
                       r'queries.anchors.weight'):
        plugin_to_hf({'queries.embedding.weight': torch.zeros(1),
                      'queries.anchors.weight': torch.zeros(1)})
    timm = 'model.backbone.conv_encoder.model.conv1.weight'  # a timm backbone
    with pytest.raises(KeyError, match=f'1 key\\(s\\) have no PluginDETR counterpart: {timm}'):
        hf_to_plugin({timm: torch.zeros(1)})
    attn = 'model.encoder.layers.0.self_attn'
    with pytest.raises(KeyError, match='no encoder.layers.0.self_attn.k_proj.weight'):
        hf_to_plugin({f'{attn}.q_proj.weight': torch.zeros(1),
                      f'{attn}.v_proj.weight': torch.zeros(1)})


def test_pixel_mask_and_labels():
    inputs, samples = make_batch([(4, 6), (3, 8)], num_gts=[1, 2])
    mask = hf_pixel_mask(inputs, samples)
    assert mask.shape == (2, 4, 8) and mask.dtype == torch.long
    assert mask[0].sum() == 4 * 6 and mask[0, :, 6:].sum() == 0
    assert mask[1].sum() == 3 * 8 and mask[1, 3].sum() == 0
    labels = hf_labels(samples, 'cpu')
    x1, y1, x2, y2 = samples[1].gt_instances.bboxes[1].tolist()
    expected = [(x1 + x2) / 2 / 8, (y1 + y2) / 2 / 3, (x2 - x1) / 8, (y2 - y1) / 3]
    assert torch.allclose(labels[1]['boxes'][1], torch.tensor(expected), atol=1e-6)
    assert torch.equal(labels[1]['class_labels'], samples[1].gt_instances.labels)


def test_converters_import_neither_transformers_nor_the_models():
    """Loaded on their own (mmengine imports transformers where installed, so
    the plugin's package init cannot tell): torch only."""
    code = textwrap.dedent('''
        import importlib.util, sys, types
        parent = types.ModuleType('mmdet_detr_plugin')
        parent.__path__ = []
        sys.modules['mmdet_detr_plugin'] = parent
        spec = importlib.util.spec_from_file_location(
            'mmdet_detr_plugin.converters', sys.argv[1] + '/__init__.py',
            submodule_search_locations=[sys.argv[1]])
        sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[spec.name])
        assert callable(sys.modules[spec.name].build_hf_detr)
        print(sorted(m for m in sys.modules if m.split('.')[0] in
                     ('transformers', 'mmdet', 'mmengine', 'mmcv')
                     or m.startswith('mmdet_detr_plugin.models')))
    ''')
    package = osp.join(REPO, 'mmdet_detr_plugin', 'converters')
    proc = subprocess.run([sys.executable, '-c', code, package], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '[]'


@needs_transformers
def test_transformers_detr_round_trips():
    """Every key of transformers' own DETR has a plugin name, and back."""
    ours = _tiny_hf_detr().state_dict()
    plugin = hf_to_plugin(ours)
    attn = 'model.decoder.layers.1.encoder_attn'
    assert torch.equal(plugin['decoder.layers.1.cross_attn.in_proj_weight'], torch.cat(
        [ours[f'{attn}.{p}_proj.weight'] for p in 'qkv']))
    assert plugin['queries.embedding.weight'].shape == (5, 32)
    assert plugin['backbone.layer4.0.downsample.1.num_batches_tracked'].item() == 0
    assert not any('q_proj' in k or 'k_proj' in k for k in plugin)
    back = plugin_to_hf(plugin)
    assert sorted(back) == sorted(ours)
    assert all(torch.equal(back[k], ours[k]) for k in ours)


@needs_transformers
def test_plugin_r50_round_trips_through_transformers():
    plugin = _plugin_r50()
    ours = plugin.state_dict()
    hf = build_hf_detr(plugin)  # loads every key: none missing, none unexpected
    back = hf_to_plugin(hf.state_dict())
    assert sorted(back) == sorted(ours)
    assert all(torch.equal(back[k], ours[k]) for k in ours)  # counters: 0 in a new model


@needs_transformers
def test_tool_converts_files_both_ways(tmp_path, monkeypatch):
    """A save_pretrained-style folder -> plugin checkpoint -> .safetensors."""
    from safetensors.torch import load_file, save_file
    ours = {k: v.contiguous() for k, v in _tiny_hf_detr().state_dict().items()}
    os.makedirs(tmp_path / 'hf')
    save_file(ours, str(tmp_path / 'hf' / 'model.safetensors'))
    mid, dst = str(tmp_path / 'plugin.pth'), str(tmp_path / 'back.safetensors')
    for args in ([str(tmp_path / 'hf'), mid, '--to', 'plugin'], [mid, dst, '--to', 'hf']):
        monkeypatch.setattr(sys, 'argv', [TOOL, *args])
        runpy.run_path(TOOL, run_name='__main__')
    plugin = torch.load(mid, weights_only=True)['state_dict']
    assert torch.equal(plugin['neck.proj.weight'], ours['model.input_projection.weight'])
    back = load_file(dst)
    assert sorted(back) == sorted(ours)
    assert all(torch.equal(back[k], ours[k]) for k in ours)
    # the other layout's file: one error naming the file and a key
    monkeypatch.setattr(sys, 'argv', [TOOL, dst, mid, '--to', 'hf'])
    with pytest.raises(SystemExit) as err:
        runpy.run_path(TOOL, run_name='__main__')
    assert str(err.value).startswith(f'{dst}: ')
    assert 'model.' in str(err.value)


@needs_transformers
def test_same_outputs_losses_and_gradients():
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
             (plugin.queries.embedding.weight, hf.model.query_position_embeddings.weight),
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


@needs_transformers
def test_unsupported_models_are_refused_by_name():
    cfg = copy.deepcopy(SMALL_PLUGIN_DETR)
    with pytest.raises(ValueError, match='ResNet-50/101/152'):
        build_hf_detr(MODELS.build(cfg))  # ResNet-18
    with pytest.raises(ValueError, match='num_groups=2: query groups'):
        build_hf_detr(_plugin_r50(queries=dict(type='PluginDETRQueries', num_groups=2)))
    with pytest.raises(ValueError, match='model.queries is PluginAnchorPointQueries'):
        build_hf_detr(_plugin_r50(queries=dict(type='PluginAnchorPointQueries')))

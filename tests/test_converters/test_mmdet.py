"""PluginDETR <-> mmdet 3.3 DETR: every key named as mmdet's own DETR names it."""
import copy
import os.path as osp
import runpy
import sys
from collections import OrderedDict

import pytest
import torch

from mmdet.registry import MODELS
from mmdet_detr_plugin.converters import mmdet_to_plugin, plugin_to_mmdet

from conftest import SMALL_MMDET_DETR, SMALL_PLUGIN_DETR

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'model_converters', 'mmdet_detr_convert.py')

# (plugin, mmdet): one key per rule and per shared name
PAIRS = [
    ('backbone.layer4.1.bn2.running_var', 'backbone.layer4.1.bn2.running_var'),
    ('neck.proj.weight', 'neck.convs.0.conv.weight'),
    ('queries.embedding.weight', 'query_embedding.weight'),
    ('encoder.layers.0.self_attn.in_proj_weight', 'encoder.layers.0.self_attn.attn.in_proj_weight'),
    ('decoder.layers.2.cross_attn.out_proj.bias', 'decoder.layers.2.cross_attn.attn.out_proj.bias'),
    ('encoder.layers.1.ffn.linear1.weight', 'encoder.layers.1.ffn.layers.0.0.weight'),
    ('decoder.layers.0.ffn.linear2.bias', 'decoder.layers.0.ffn.layers.1.bias'),
    ('encoder.layers.1.norm1.weight', 'encoder.layers.1.norms.0.weight'),
    ('decoder.layers.1.norm2.bias', 'decoder.layers.1.norms.1.bias'),
    ('decoder.layers.2.norm3.weight', 'decoder.layers.2.norms.2.weight'),
    ('decoder.norm.bias', 'decoder.post_norm.bias'),
    ('bbox_head.fc_cls.weight', 'bbox_head.fc_cls.weight'),
    ('bbox_head.bbox_mlp.0.weight', 'bbox_head.reg_ffn.layers.0.0.weight'),
    ('bbox_head.bbox_mlp.1.bias', 'bbox_head.reg_ffn.layers.1.bias'),
    ('bbox_head.bbox_mlp.2.weight', 'bbox_head.fc_reg.weight'),
]


def build_mmdet() -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.build(copy.deepcopy(SMALL_MMDET_DETR))


def build_plugin(**overrides) -> torch.nn.Module:
    cfg = copy.deepcopy(SMALL_PLUGIN_DETR)
    cfg.update(overrides)
    torch.manual_seed(1)
    return MODELS.build(cfg)


def test_each_rule_renames_exactly_both_ways():
    plugin_keys, mmdet_keys = zip(*PAIRS)
    values = [torch.full((1, ), float(i)) for i in range(len(PAIRS))]
    to_mmdet = plugin_to_mmdet(OrderedDict(zip(plugin_keys, values)))
    assert list(to_mmdet) == list(mmdet_keys)
    assert all(a is b for a, b in zip(to_mmdet.values(), values))  # tensors shared
    assert list(mmdet_to_plugin(to_mmdet)) == list(plugin_keys)


def test_mmdet_detr_round_trips_exactly():
    """mmdet's own DETR -> plugin names -> mmdet names: the same dict."""
    ours = build_mmdet().state_dict()
    plugin = mmdet_to_plugin(ours)
    assert 'queries.embedding.weight' in plugin and 'neck.proj.weight' in plugin
    assert plugin['queries.embedding.weight'].shape == (10, 64)
    back = plugin_to_mmdet(plugin)
    assert list(back) == list(ours)
    assert all(back[k] is ours[k] for k in ours)


def test_plugin_model_converts_to_mmdet_names_and_back():
    """Every mmdet key produced from a real PluginDETR is one of mmdet's DETR
    (same shapes, strict load) and the way back gives the plugin's dict."""
    plugin = build_plugin().state_dict()
    mmdet = build_mmdet()
    converted = plugin_to_mmdet(plugin)
    reference = mmdet.state_dict()
    assert sorted(converted) == sorted(reference)
    assert all(converted[k].shape == reference[k].shape for k in reference)
    mmdet.load_state_dict(converted, strict=True)
    assert torch.equal(mmdet.query_embedding.weight, plugin['queries.embedding.weight'])
    assert torch.equal(mmdet.neck.convs[0].conv.weight, plugin['neck.proj.weight'])
    back = mmdet_to_plugin(mmdet.state_dict())
    assert sorted(back) == sorted(plugin)
    assert all(torch.equal(back[k], plugin[k]) for k in plugin)


@pytest.mark.parametrize('key, match', [
    ('encoder.norm.weight', r'encoder.norm.\* \(a pre-norm encoder\)'),
    ('queries.anchors.weight', 'PluginAnchorPointQueries'),
    ('bbox_head.bbox_mlp.3.weight', r"bbox_mlp has linears \['0', '1', '2', '3'\]"),
])
def test_plugin_keys_without_counterpart_are_named(key, match):
    state = OrderedDict((plugin, torch.zeros(1)) for plugin, _ in PAIRS)
    state[key] = torch.zeros(1)
    with pytest.raises(KeyError, match=match):
        plugin_to_mmdet(state)


def test_foreign_keys_are_listed():
    state = OrderedDict((mmdet, torch.zeros(1)) for _, mmdet in PAIRS)
    state['transformer.encoder.layers.0.linear1.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"1 key\(s\) are not part of a mmdet DETR state dict: "
                       r'transformer.encoder.layers.0.linear1.weight'):
        mmdet_to_plugin(state)


def test_tool_converts_files_both_ways(tmp_path, monkeypatch):
    """mmdet checkpoint -> plugin -> mmdet, meta kept; a 0.1.0 plugin file
    (``query_embedding.weight`` on the detector) is upgraded on the way."""
    mmdet = build_mmdet().state_dict()
    src, mid, dst = (str(tmp_path / f'{n}.pth') for n in ('mmdet', 'plugin', 'back'))
    torch.save(dict(state_dict=mmdet, meta=dict(classes=('a', 'b'))), src)
    for args in ([src, mid, '--to', 'plugin'], [mid, dst, '--to', 'mmdet']):
        monkeypatch.setattr(sys, 'argv', [TOOL, *args])
        runpy.run_path(TOOL, run_name='__main__')
    plugin = torch.load(mid, weights_only=True)
    assert plugin['meta'] == dict(classes=('a', 'b'))
    assert torch.equal(plugin['state_dict']['queries.embedding.weight'],
                       mmdet['query_embedding.weight'])
    back = torch.load(dst, weights_only=True)['state_dict']
    assert list(back) == list(mmdet) and all(torch.equal(back[k], mmdet[k]) for k in mmdet)

    legacy = OrderedDict(plugin['state_dict'])
    legacy['query_embedding.weight'] = legacy.pop('queries.embedding.weight')
    torch.save(dict(state_dict=legacy), mid)
    monkeypatch.setattr(sys, 'argv', [TOOL, mid, dst, '--to', 'mmdet'])
    runpy.run_path(TOOL, run_name='__main__')
    back = torch.load(dst, weights_only=True)['state_dict']
    assert sorted(back) == sorted(mmdet)
    assert torch.equal(back['query_embedding.weight'], mmdet['query_embedding.weight'])

    # a file of another layout: one error naming the file and the keys
    torch.save(dict(state_dict=mmdet), src)
    monkeypatch.setattr(sys, 'argv', [TOOL, src, dst, '--to', 'mmdet'])
    with pytest.raises(SystemExit) as err:
        runpy.run_path(TOOL, run_name='__main__')
    assert str(err.value).startswith(f'{src}: ')
    assert 'neck.convs.0.conv.weight' in str(err.value)

"""Checkpoints of the original DETR release load into PluginDETR.

No release file is downloaded: release-layout state dicts are made in two
ways that do not share code with the converter's rules: by hand from the
modules the release is built of (torchvision's ResNet, torch's
``nn.Transformer`` layers, which carry the release's names, and plain
Linear / Embedding / Conv2d heads), and by the reverse converter from
small plugin models (for the exact round trips and equal outputs).
"""
import argparse
import copy
import os.path as osp
import runpy
import subprocess
import sys
from collections import OrderedDict
from typing import Dict

import pytest
import torch
import torchvision
from mmengine.config import Config
from torch import Tensor, nn

from mmdet.datasets import CocoDataset
from mmdet.registry import MODELS
from mmdet_detr_plugin.converters import COCO_CATEGORY_IDS, OriginalCheckpointError, \
    convert_original, load_release_file, original_to_plugin, plugin_to_mmdet, plugin_to_original
from mmdet_detr_plugin.models.layers.positional_encoding import PluginLearnedPositionalEncoding

from conftest import make_batch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'model_converters', 'detr_original_to_plugin.py')
R50_CONFIG = osp.join(REPO, 'configs', 'detr_r50_coco.py')


def build(cfg: dict, seed: int = 0) -> nn.Module:
    """The model of ``cfg`` with its modules' own random init (no
    ``init_weights``: slow and not needed to tell weights apart);
    ``cfg['learned_pos']`` swaps in the learned positional encoding (set on
    the module: the detector's config path always passes the sine
    encoding's ``normalize``)."""
    cfg = copy.deepcopy(cfg)
    learned_pos = cfg.pop('learned_pos', False)
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    if learned_pos:
        model.positional_encoding = PluginLearnedPositionalEncoding(num_feats=model.embed_dims // 2)
        nn.init.normal_(model.positional_encoding.row_embed.weight)
        nn.init.normal_(model.positional_encoding.col_embed.weight)
    return model.eval()


@pytest.fixture
def coco_cfg(small_plugin_cfg) -> dict:
    cfg = copy.deepcopy(small_plugin_cfg)
    cfg['bbox_head']['num_classes'] = 80
    return cfg


@pytest.fixture
def learned_prenorm_cfg(coco_cfg) -> dict:
    cfg = copy.deepcopy(coco_cfg)
    cfg['learned_pos'] = True
    cfg['encoder']['pre_norm'] = cfg['decoder']['pre_norm'] = True
    return cfg


def assert_same(a: Dict[str, Tensor], b: Dict[str, Tensor]) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def upderp_extras(d: int, c5: int) -> Dict[str, Tensor]:
    """UP-DETR's pretraining heads: patch2query [d, C5] and a 2-layer MLP."""
    return OrderedDict([('patch2query.weight', torch.randn(d, c5)),
                        ('patch2query.bias', torch.randn(d)),
                        ('feature_align.layers.0.weight', torch.randn(d, d)),
                        ('feature_align.layers.0.bias', torch.randn(d)),
                        ('feature_align.layers.1.weight', torch.randn(d, d)),
                        ('feature_align.layers.1.bias', torch.randn(d))])


def release_r50_by_hand() -> 'OrderedDict[str, Tensor]':
    """DETR R50 as the release's ``DETR`` module names it, built from the
    modules it is made of: torchvision's ResNet-50 (no fc; frozen BN has no
    ``num_batches_tracked``), a post-norm 6 + 6 layer transformer (no encoder
    norm), class_embed Linear(256, 92), a 3-layer bbox MLP, 100 queries."""
    torch.manual_seed(1)
    out = OrderedDict()
    for k, v in torchvision.models.resnet50().state_dict().items():
        if not k.startswith('fc.') and not k.endswith('num_batches_tracked'):
            out[f'backbone.0.body.{k}'] = v
    transformer = nn.Transformer(d_model=256, nhead=8, num_encoder_layers=6,
                                 num_decoder_layers=6, dim_feedforward=2048)
    for k, v in transformer.state_dict().items():
        if not k.startswith('encoder.norm.'):
            out[f'transformer.{k}'] = v
    heads = dict(class_embed=nn.Linear(256, 92), query_embed=nn.Embedding(100, 256),
                 input_proj=nn.Conv2d(2048, 256, 1))
    heads['bbox_embed.layers'] = nn.ModuleList(
        [nn.Linear(256, 256), nn.Linear(256, 256), nn.Linear(256, 4)])
    for name, module in heads.items():
        for k, v in module.state_dict().items():
            out[f'{name}.{k}'] = v
    return out


# ---------------------------------------------------------------------- #
def test_coco_category_ids():
    ids = COCO_CATEGORY_IDS
    assert len(ids) == len(CocoDataset.METAINFO['classes']) == 80
    assert list(ids) == sorted(set(ids)) and ids[0] == 1 and ids[-1] == 90
    # the 10 ids COCO 2017 leaves unused (among 1..90)
    assert set(range(1, 91)) - set(ids) == {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def test_release_r50_names_both_ways():
    """The hand-made release R50 -> plugin names -> release names: the same
    dict, in the same order (rows kept: a 91-class model)."""
    release = release_r50_by_hand()
    result = convert_original(release, num_classes=91, class_map=None)
    assert result.arch.describe() == ('ResNet-50, 6 encoder + 6 decoder layers, '
                                      'sine positional encoding')
    ours = result.state_dict
    pairs = [('queries.embedding.weight', 'query_embed.weight'),
             ('neck.proj.weight', 'input_proj.weight'),
             ('backbone.layer4.2.bn3.running_var', 'backbone.0.body.layer4.2.bn3.running_var'),
             ('encoder.layers.5.ffn.linear2.bias', 'transformer.encoder.layers.5.linear2.bias'),
             ('decoder.layers.0.cross_attn.in_proj_weight',
              'transformer.decoder.layers.0.multihead_attn.in_proj_weight'),
             ('decoder.layers.3.self_attn.out_proj.weight',
              'transformer.decoder.layers.3.self_attn.out_proj.weight'),
             ('decoder.layers.1.norm3.bias', 'transformer.decoder.layers.1.norm3.bias'),
             ('decoder.norm.weight', 'transformer.decoder.norm.weight'),
             ('bbox_head.fc_cls.weight', 'class_embed.weight'),
             ('bbox_head.bbox_mlp.2.bias', 'bbox_embed.layers.2.bias')]
    for plugin_key, release_key in pairs:
        assert ours[plugin_key] is release[release_key], plugin_key
    # a zero counter right after each backbone batch norm's running_var
    keys = list(ours)
    at = keys.index('backbone.layer1.0.bn1.running_var')
    assert keys[at + 1] == 'backbone.layer1.0.bn1.num_batches_tracked'
    assert ours['backbone.layer1.0.bn1.num_batches_tracked'].item() == 0
    assert len(ours) == len(release) + 53  # 53 batch norms in a ResNet-50
    back = plugin_to_original(ours, class_map=None)
    assert list(back) == list(release)
    assert all(back[k] is release[k] for k in release)
    # anchor-point queries have no release counterpart
    ours['queries.anchors.weight'] = torch.zeros(100, 2)
    with pytest.raises(OriginalCheckpointError,
                       match=r'1 unexpected key\(s\): queries.anchors.weight$'):
        plugin_to_original(ours, class_map=None)


@pytest.mark.parametrize('variant', ['coco', 'no_class_map', 'learned_prenorm'])
def test_round_trip_is_exact(variant, coco_cfg, small_plugin_cfg, learned_prenorm_cfg):
    cfg = dict(coco=coco_cfg, no_class_map=small_plugin_cfg,
               learned_prenorm=learned_prenorm_cfg)[variant]
    class_map = None if variant == 'no_class_map' else 'coco'
    ours = build(cfg).state_dict()
    original = plugin_to_original(ours, class_map=class_map)
    assert not any(k.endswith('num_batches_tracked') for k in original)
    rows = 92 if class_map else 6
    assert original['class_embed.weight'].shape == (rows, 64)
    assert original['transformer.decoder.layers.0.multihead_attn.in_proj_weight'].shape == (192, 64)
    assert ('transformer.encoder.norm.weight' in original) == (variant == 'learned_prenorm')
    assert ('backbone.1.row_embed.weight' in original) == (variant == 'learned_prenorm')
    back = original_to_plugin(original, num_classes=cfg['bbox_head']['num_classes'],
                              class_map=class_map, reference=ours)
    assert_same(back, ours)


def test_class_map_puts_coco_ids_in_mmdet_label_order(coco_cfg):
    original = plugin_to_original(build(coco_cfg).state_dict())
    # row i of the release classifier = category id i; row 91 = no-object
    original['class_embed.weight'] = torch.arange(92.)[:, None].expand(92, 64).clone()
    original['class_embed.bias'] = torch.arange(92.)
    ours = original_to_plugin(original)
    weight, bias = ours['bbox_head.fc_cls.weight'], ours['bbox_head.fc_cls.bias']
    assert weight.shape == (81, 64) and bias.shape == (81, )
    classes = CocoDataset.METAINFO['classes']
    assert classes[0] == 'person' and bias[0] == 1 and torch.all(weight[0] == 1)
    assert classes[79] == 'toothbrush' and bias[79] == 90 and torch.all(weight[79] == 90)
    assert bias[80] == 91 and torch.all(weight[80] == 91)  # no-object last
    assert bias.tolist() == [float(i) for i in COCO_CATEGORY_IDS] + [91.]
    # without the map (a 91-class model) the rows stay as they are
    kept = original_to_plugin(original, num_classes=91, class_map=None)
    assert torch.equal(kept['bbox_head.fc_cls.bias'], torch.arange(92.))


@pytest.mark.parametrize('learned_prenorm', [False, True])
def test_converted_model_gives_the_same_outputs(learned_prenorm, coco_cfg,
                                                learned_prenorm_cfg):
    cfg = learned_prenorm_cfg if learned_prenorm else coco_cfg
    source = build(cfg, seed=0)
    target = build(cfg, seed=1)  # different weights until loaded
    original = plugin_to_original(source.state_dict())
    target.load_state_dict(original_to_plugin(original), strict=True)
    inputs, samples = make_batch([(96, 128), (128, 80)], num_gts=[1, 1])
    with torch.no_grad():
        cls_a, box_a = source._forward(inputs, samples)
        cls_b, box_b = target._forward(inputs, samples)
    assert cls_a.shape == (3, 2, 10, 81)
    assert torch.equal(cls_a, cls_b) and torch.equal(box_a, box_b)


def test_backbone_computes_as_torchvision(coco_cfg):
    """The release's backbone is torchvision's ResNet: same features after conversion."""
    torch.manual_seed(2)
    resnet = torchvision.models.resnet18().eval()
    for m in resnet.modules():  # non-trivial frozen statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    original = plugin_to_original(build(coco_cfg).state_dict())
    for k, v in resnet.state_dict().items():
        if not k.startswith('fc.') and not k.endswith('num_batches_tracked'):
            assert f'backbone.0.body.{k}' in original, k
            original[f'backbone.0.body.{k}'] = v
    model = build(coco_cfg, seed=3)
    model.load_state_dict(original_to_plugin(original), strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = x
        for name in ('conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4'):
            ref = getattr(resnet, name)(ref)
        assert torch.allclose(model.backbone(x)[-1], ref, atol=1e-5)


def test_upderp_extras_are_dropped_and_reported(coco_cfg):
    original = plugin_to_original(build(coco_cfg).state_dict())
    extras = upderp_extras(64, 512)
    result = convert_original(OrderedDict(**original, **extras))
    assert result.dropped == list(extras)
    assert_same(result.state_dict, original_to_plugin(original))
    with pytest.warns(UserWarning, match='patch2query.weight'):
        original_to_plugin(OrderedDict(**original, **extras))


def test_upderp_pretrained_classifier_is_refused(coco_cfg):
    original = plugin_to_original(build(coco_cfg).state_dict())
    original.update(upderp_extras(64, 512))
    original['class_embed.weight'] = torch.zeros(3, 64)  # class 0, patch, no-object
    original['class_embed.bias'] = torch.zeros(3)
    with pytest.raises(OriginalCheckpointError,
                       match=r'(?s)class_embed.weight \[3, 64\].*updetr_convert.py'):
        original_to_plugin(original)


def test_partial_checkpoint_lists_missing_keys(coco_cfg):
    model = build(coco_cfg)
    original = plugin_to_original(model.state_dict())
    hole = {k: v for k, v in original.items() if '.decoder.layers.1.' not in k}
    with pytest.raises(OriginalCheckpointError) as err:
        original_to_plugin(hole)
    msg = str(err.value)
    assert '18 missing key(s)' in msg  # self_attn, multihead_attn, linear1/2, norm1/2/3
    assert 'transformer.decoder.layers.1.multihead_attn.in_proj_weight' in msg
    assert 'unexpected' not in msg
    # a missing last layer cannot be told from names: the model's state dict can
    short = {k: v for k, v in original.items() if '.decoder.layers.2.' not in k}
    with pytest.raises(OriginalCheckpointError, match='decoder.layers.2.cross_attn.in_proj_weight'):
        original_to_plugin(short, reference=model.state_dict())


def test_mmdet_layout_is_refused_with_one_error(coco_cfg):
    mmdet_layout = plugin_to_mmdet(build(coco_cfg).state_dict())
    with pytest.raises(OriginalCheckpointError) as err:
        original_to_plugin(mmdet_layout)
    msg = str(err.value)
    assert 'missing key(s)' in msg and 'input_proj.weight' in msg
    assert 'unexpected key(s)' in msg and 'neck.convs.0.conv.weight' in msg
    assert 'mmdet_detr_convert.py' in msg  # points to the right tool


def test_release_file_loads_weights_only(tmp_path):
    state = OrderedDict(w=torch.ones(2))
    path = str(tmp_path / 'release.pth')
    torch.save(dict(model=state, args=argparse.Namespace(lr=1e-4, backbone='resnet50')), path)
    loaded, others = load_release_file(path)
    assert torch.equal(loaded['w'], state['w']) and others['args'].backbone == 'resnet50'
    # allowed for that load only, and nothing else is let through
    assert argparse.Namespace not in torch.serialization.get_safe_globals()
    torch.save(dict(model=state, args=argparse.ArgumentTypeError('x')), path)
    with pytest.raises(Exception, match='ArgumentTypeError'):
        load_release_file(path)


def test_tool_converts_a_release_r50_file(tmp_path, monkeypatch):
    """The hand-made release R50 (+ UP-DETR extras and ``args``) goes through
    the tool and loads strictly into the model of configs/detr_r50_coco.py."""
    cfg = Config.fromfile(R50_CONFIG)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    release = release_r50_by_hand()
    # the reverse converter names the plugin's R50 exactly as the release does
    reverse = plugin_to_original(model.state_dict())
    assert sorted(reverse) == sorted(release)
    assert all(reverse[k].shape == v.shape for k, v in release.items())
    assert release['class_embed.weight'].shape == (92, 256)
    assert release['transformer.decoder.layers.5.multihead_attn.in_proj_weight'].shape == (768, 256)

    src, dst = str(tmp_path / 'detr-r50.pth'), str(tmp_path / 'detr-r50-plugin.pth')
    extras = upderp_extras(256, 2048)
    torch.save(dict(model=OrderedDict(**release, **extras),
                    args=argparse.Namespace(backbone='resnet50', dilation=False)), src)
    proc = subprocess.run([sys.executable, TOOL, src, dst, '--config', R50_CONFIG], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'ResNet-50' in proc.stdout and 'patch2query.weight' in proc.stdout
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['release_layout'] == 'box'  # panoptic: test_original_panoptic.py
    assert tuple(ckpt['meta']['dataset_meta']['classes']) == CocoDataset.METAINFO['classes']
    model.load_state_dict(ckpt['state_dict'], strict=True)
    ours = model.state_dict()
    assert torch.equal(ours['backbone.layer4.2.bn3.running_var'],
                       release['backbone.0.body.layer4.2.bn3.running_var'])
    assert torch.equal(ours['decoder.layers.5.cross_attn.in_proj_weight'],
                       release['transformer.decoder.layers.5.multihead_attn.in_proj_weight'])
    assert torch.equal(ours['bbox_head.fc_cls.weight'][79], release['class_embed.weight'][90])

    # a partial file: one clear error naming the file (in-process: no second start-up)
    del release['transformer.decoder.layers.3.norm2.weight']
    torch.save(dict(model=release), src)
    monkeypatch.setattr(sys, 'argv', [TOOL, src, dst])
    with pytest.raises(SystemExit) as err:
        runpy.run_path(TOOL, run_name='__main__')
    assert str(err.value).startswith(f'{src}: ')
    assert 'transformer.decoder.layers.3.norm2.weight' in str(err.value)

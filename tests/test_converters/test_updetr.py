"""UP-DETR's pre-trained checkpoint (the reference release's layout) in the
plugin: strictly into the pre-training model, and as a fine-tuning start.

The release-layout state dict is built by hand from the modules it is made of
(torchvision's ResNet-50, torch's pre-norm ``nn.Transformer`` with its
encoder norm, the heads), in the shapes of
``up-detr-pre-training-60ep-imagenet.pth``; nothing is downloaded.
"""
import argparse
import logging
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import load_state_dict
from torch import nn

from mmdet.registry import MODELS
from mmdet_detr_plugin.converters import OriginalCheckpointError
from mmdet_detr_plugin.converters.updetr import plugin_to_updetr, updetr_to_plugin

from test_original import release_r50_by_hand

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRETRAIN = osp.join(REPO, 'configs', 'up-detr-pretrain_r50_8xb32-60e_in1k.py')
FINETUNE = osp.join(REPO, 'configs', 'up-detr_r50_8xb2-300e_coco.py')


def release_updetr_by_hand() -> 'OrderedDict[str, torch.Tensor]':
    """DETR R50 of the release plus what UP-DETR's pre-training model adds:
    ``transformer.encoder.norm`` (pre-norm), a 3-row classifier,
    ``patch2query`` (2048 -> 256) and ``feature_align`` (256 -> 256 -> 2048)."""
    out = release_r50_by_hand()
    torch.manual_seed(2)
    norm = nn.LayerNorm(256)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    for k, v in norm.state_dict().items():
        out[f'transformer.encoder.norm.{k}'] = v
    classifier = nn.Linear(256, 3)
    out['class_embed.weight'], out['class_embed.bias'] = classifier.weight, classifier.bias
    heads = dict(patch2query=nn.Linear(2048, 256))
    heads['feature_align.layers'] = nn.ModuleList([nn.Linear(256, 256), nn.Linear(256, 2048)])
    for name, module in heads.items():
        for k, v in module.state_dict().items():
            out[f'{name}.{k}'] = v
    return OrderedDict((k, v.detach()) for k, v in out.items())


def build(config: str) -> nn.Module:
    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(config).model).eval()


@pytest.fixture(scope='module')
def release():
    return release_updetr_by_hand()


def test_into_pretraining_model_strictly_and_back(release):
    converted, left_out = updetr_to_plugin(release, 'pretrain')
    assert left_out == []
    model = build(PRETRAIN)
    model.load_state_dict(converted, strict=True)
    own = model.state_dict()
    pairs = [('queries.patch2query.weight', 'patch2query.weight'),
             ('bbox_head.feature_align.layers.1.weight', 'feature_align.layers.1.weight'),
             ('encoder.norm.bias', 'transformer.encoder.norm.bias'),
             ('queries.embedding.weight', 'query_embed.weight'),
             ('decoder.layers.2.cross_attn.in_proj_weight',
              'transformer.decoder.layers.2.multihead_attn.in_proj_weight'),
             ('backbone.layer3.1.conv2.weight', 'backbone.0.body.layer3.1.conv2.weight')]
    for ours, theirs in pairs:
        assert torch.equal(own[ours], release[theirs]), ours
    # the classifier: rows 1 (patch) and 2 (no-object) of the release's three
    assert torch.equal(own['bbox_head.fc_cls.weight'], release['class_embed.weight'][1:])
    assert torch.equal(own['bbox_head.fc_cls.bias'], release['class_embed.bias'][1:])
    # and back: the same keys and tensors, but row 0, which no target ever used
    back = plugin_to_updetr(own)
    assert set(back) == set(release)
    for key, value in release.items():
        if key.startswith('class_embed.'):
            assert torch.equal(back[key][1:], value[1:])
        else:
            assert torch.equal(back[key], value), key
    assert not back['class_embed.weight'][0].any() and back['class_embed.bias'][0] == -1e4


def test_fine_tuning_start(release):
    converted, left_out = updetr_to_plugin(release, 'finetune')
    assert left_out[:2] == ['class_embed.weight', 'class_embed.bias']
    assert {k.rsplit('.', 1)[0] for k in left_out[2:]} == {
        'patch2query', 'feature_align.layers.0', 'feature_align.layers.1'}
    assert not any(k.startswith(('bbox_head.fc_cls', 'queries.patch2query',
                                 'bbox_head.feature_align')) for k in converted)
    model = build(FINETUNE)
    fresh = model.bbox_head.fc_cls.weight.clone()
    load_state_dict(model, converted, strict=False)
    own = model.state_dict()
    for key, value in converted.items():
        assert torch.equal(own[key], value), key
    assert torch.equal(model.bbox_head.fc_cls.weight, fresh)  # reset_classifier: kept fresh


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_pretraining_checkpoint_loads_into_the_detector_with_a_listing(release):
    """A PluginUPDETR state dict (a pre-training checkpoint) into the
    fine-tuning config: heads and classifier dropped with a log line that
    lists them, every other tensor loaded."""
    pretrained = build(PRETRAIN)
    pretrained.load_state_dict(updetr_to_plugin(release, 'pretrain')[0])
    state = pretrained.state_dict()
    model = build(FINETUNE)
    fresh = model.bbox_head.fc_cls.weight.clone()
    logger = MMLogger.get_current_instance()
    records = Records()
    logger.addHandler(records)
    try:
        load_state_dict(model, OrderedDict(state), strict=False, logger=logger)
    finally:
        logger.removeHandler(records)
    line = [m for m in records.messages if 'UP-DETR pre-training checkpoint' in m]
    assert len(line) == 1
    for name in ('bbox_head.fc_cls', 'bbox_head.feature_align.layers.0',
                 'bbox_head.feature_align.layers.1', 'queries.patch2query'):
        assert name in line[0]
    assert '8 tensors' in line[0]
    own = model.state_dict()
    dropped = ('bbox_head.fc_cls', 'queries.patch2query', 'bbox_head.feature_align')
    for key, value in state.items():
        if not key.startswith(dropped):
            assert torch.equal(own[key], value), key
    assert torch.equal(model.bbox_head.fc_cls.weight, fresh)
    # nothing else is left out: unexpected keys would be reported by mmengine
    assert not any('unexpected key' in m for m in records.messages)


def test_not_a_pretraining_checkpoint(release):
    plain = OrderedDict((k, v) for k, v in release.items()
                        if not k.startswith(('patch2query', 'feature_align')))
    with pytest.raises(OriginalCheckpointError, match='no patch2query'):
        updetr_to_plugin(plain)
    two_rows = OrderedDict(release)
    two_rows['class_embed.weight'] = release['class_embed.weight'][:2]
    with pytest.raises(OriginalCheckpointError, match='3 rows'):
        updetr_to_plugin(two_rows)
    with pytest.raises(ValueError, match='target'):
        updetr_to_plugin(release, 'detect')


def test_tool_writes_a_checked_checkpoint(release, tmp_path):
    src, dst = tmp_path / 'up-detr.pth', tmp_path / 'plugin.pth'
    # the release's entries: model, optimizer, lr_scheduler, epoch, args (a Namespace)
    torch.save(dict(model=release, optimizer=dict(state={}, param_groups=[]),
                    lr_scheduler=dict(last_epoch=59), epoch=59,
                    args=argparse.Namespace(num_patches=10, lr=1e-4)), src)
    tool = osp.join(REPO, 'tools', 'model_converters', 'updetr_convert.py')
    proc = subprocess.run([sys.executable, tool, str(src), str(dst), '--to', 'finetune',
                           '--config', FINETUNE], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert 'checked against' in proc.stdout and 'patch2query.weight' in proc.stdout
    assert 'ignored entries of the file: optimizer, lr_scheduler, epoch, args' in proc.stdout
    saved = torch.load(dst, weights_only=True)['state_dict']
    assert torch.equal(saved['encoder.norm.weight'], release['transformer.encoder.norm.weight'])

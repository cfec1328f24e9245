"""Bad input at the model: each case has a defined, documented behaviour."""
import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

from mmdet.registry import MODELS
from mmdet_detr_plugin.converters import plugin_to_mmdet
from mmdet_detr_plugin.engine.hooks import guard_parse_losses
from mmdet_detr_plugin.models.detectors.checkpoint_guard import CheckpointMismatchError

from conftest import make_batch


def build(cfg, **overrides):
    cfg = copy.deepcopy(cfg)
    cfg.update(overrides)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_image_without_objects_trains(small_plugin_cfg):
    model = build(small_plugin_cfg).train()
    inputs, samples = make_batch([(64, 64), (64, 64)], num_gts=[0, 0])
    losses = model.loss(inputs, samples)
    assert losses['loss_bbox'].item() == 0 and losses['loss_iou'].item() == 0
    assert losses['loss_cls'].item() > 0
    sum(losses.values()).backward()
    grad = model.bbox_head.fc_cls.bias.grad
    assert torch.isfinite(grad).all()
    # every query is pushed towards "no object": that logit's gradient is negative
    assert grad[-1] < 0 and (grad[:-1] > 0).all()


def _with_boxes(boxes, labels=None, shape=(64, 64)):
    inputs, samples = make_batch([shape], num_gts=[0])
    samples[0].gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32),
        labels=torch.tensor(labels if labels is not None else [0] * len(boxes)))
    samples[0].set_metainfo(dict(img_path='toy/000007.png'))
    return inputs, samples


def test_degenerate_boxes_are_dropped_and_outside_boxes_clipped(small_plugin_cfg, capsys):
    model = build(small_plugin_cfg).train()
    good = [10., 10., 30., 40.]
    inputs, samples = _with_boxes([good,
                                   [5., 5., 5., 20.],      # zero width
                                   [30., 30., 20., 20.],   # inverted
                                   [70., 70., 90., 90.],   # wholly outside the 64x64 image
                                   [50., -10., 80., 20.]])  # partly outside: clipped
    losses = model.loss(inputs, samples)
    assert all(torch.isfinite(v) for v in losses.values())
    # the same as giving only the good box and the clipped one
    ref_inputs, ref_samples = _with_boxes([good, [50., 0., 64., 20.]])
    expected = model.loss(ref_inputs, ref_samples)
    for key in expected:
        assert torch.allclose(losses[key], expected[key], atol=1e-6), key


def test_more_boxes_than_queries(small_plugin_cfg):
    model = build(small_plugin_cfg).train()  # 10 queries
    inputs, samples = make_batch([(96, 96)], num_gts=[25])
    losses = model.loss(inputs, samples)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses['loss_bbox'].item() > 0


def test_label_outside_num_classes_names_the_key(small_plugin_cfg):
    model = build(small_plugin_cfg).train()  # 5 classes
    inputs, samples = _with_boxes([[10., 10., 30., 30.]], labels=[5])
    with pytest.raises(ValueError, match=r'toy/000007.png.*model.bbox_head.num_classes=5'):
        model.loss(inputs, samples)


def _nan_step(model, inputs, samples):
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    MessageHub.get_current_instance().update_info('iter', 41)
    with torch.no_grad():
        model.bbox_head.fc_cls.bias[0] = float('nan')
    data = dict(inputs=inputs, data_samples=samples)
    return optim, data


def test_nan_loss_stops_naming_step_and_terms(small_plugin_cfg):
    model = build(small_plugin_cfg).train()
    guard_parse_losses(model, 'raise')  # what PluginNonFiniteLossHook does before training
    inputs, samples = make_batch([(64, 64)], num_gts=[0])  # no boxes: NaN reaches the loss
    optim, data = _nan_step(model, inputs, samples)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match=r'iteration 42: loss_cls, .*d0.loss_cls'):
        model.train_step(data, optim)
    after = model.state_dict()
    changed = [k for k in before
               if not torch.equal(before[k], after[k]) and before[k].is_floating_point()
               and torch.isfinite(before[k]).all()]
    assert changed == []  # no weight was touched


def test_nan_loss_skip_leaves_weights_untouched(small_plugin_cfg):
    model = build(small_plugin_cfg).train()
    guard_parse_losses(model, 'skip')
    inputs, samples = make_batch([(64, 64)], num_gts=[0])
    optim, data = _nan_step(model, inputs, samples)
    before = {k: v.clone() for k, v in model.named_parameters()}
    log_vars = model.train_step(data, optim)
    assert all(torch.equal(before[k], p) or not torch.isfinite(before[k]).all()
               for k, p in model.named_parameters())
    assert optim.optimizer.state == {}  # no moment was updated either
    assert 'loss_cls' in log_vars


def test_nan_predictions_in_matching_give_a_clear_error(small_plugin_cfg):
    model = build(small_plugin_cfg).train()
    with torch.no_grad():
        model.bbox_head.bbox_mlp[-1].bias.fill_(float('nan'))
    inputs, samples = make_batch([(64, 64)], num_gts=[2])
    with pytest.raises(ValueError, match='not finite'):
        model.loss(inputs, samples)


def test_checkpoint_of_another_layout_lists_keys(small_plugin_cfg):
    model = build(small_plugin_cfg)
    mmdet_layout = plugin_to_mmdet(model.state_dict())
    with pytest.raises(CheckpointMismatchError,
                       match=r'(?s)missing.*encoder.layers.0.self_attn.in_proj_weight.*'
                       r'unexpected.*self_attn.attn.in_proj_weight.*mmdet_detr_convert'):
        model.load_state_dict(mmdet_layout, strict=False)


def test_checkpoint_with_other_num_classes(small_plugin_cfg):
    source = build(small_plugin_cfg)
    cfg = copy.deepcopy(small_plugin_cfg)
    cfg['bbox_head']['num_classes'] = 3
    target = build(cfg)
    with pytest.raises(CheckpointMismatchError,
                       match=r'(?s)bbox_head.fc_cls.weight: checkpoint \(6, 64\) vs model '
                       r'\(4, 64\).*model.reset_classifier=True'):
        target.load_state_dict(source.state_dict(), strict=False)
    # the documented one-liner for fine-tuning on 3 classes
    cfg['reset_classifier'] = True
    target = build(cfg)
    fresh = target.bbox_head.fc_cls.weight.clone()
    target.load_state_dict(source.state_dict(), strict=False)
    assert torch.equal(target.bbox_head.fc_cls.weight, fresh)
    assert torch.equal(target.queries.embedding.weight, source.queries.embedding.weight)


def test_checkpoint_of_the_earlier_plugin_layout_loads(small_plugin_cfg):
    """Version 0.1 kept the queries on the detector (query_embedding,
    anchor_embedding, anchor_pos_mlp): such a checkpoint is renamed on load."""
    cfg = copy.deepcopy(small_plugin_cfg)
    cfg['queries'] = dict(type='PluginAnchorPointQueries', num_groups=2)
    source, target = build(cfg), build(cfg)
    old = {}
    for key, value in source.state_dict().items():
        key = key.replace('queries.embedding.', 'query_embedding.')
        key = key.replace('queries.anchors.', 'anchor_embedding.')
        old[key.replace('queries.pos_mlp.', 'anchor_pos_mlp.')] = value
    assert 'anchor_pos_mlp.2.bias' in old and 'query_embedding.weight' in old
    target.load_state_dict(old, strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_checkpoint_holding_code_is_refused_by_name(tmp_path):
    """A file that would run code when loaded: one line naming the file and
    the refused type, never torch's advice to turn the check off."""
    from mmengine.runner import load_checkpoint

    from mmdet_detr_plugin.utils.checkpoint_compat import CheckpointRefusedError
    import os
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={}, meta=dict(hook=os.system)), path)
    model = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointRefusedError) as info:
        load_checkpoint(model, path, map_location='cpu')
    message = str(info.value)
    assert message.startswith(f'{path}: refused: it holds the Python global '
                              f'{os.system.__module__}.system;')
    assert '\n' not in message
    assert 'weights_only' not in message and info.value.__cause__ is None


def test_options_of_the_previous_version_name_their_new_place(small_plugin_cfg):
    with pytest.raises(TypeError, match="model.anchor_points is not an option of PluginDETR; "
                       "it moved to model.queries=dict\\(type='PluginAnchorPointQueries'\\)"):
        build(small_plugin_cfg, anchor_points=True)
    with pytest.raises(TypeError, match='model.fold_frozen_bn .*model.accel.fold_frozen_bn'):
        build(small_plugin_cfg, fold_frozen_bn=False)
    with pytest.raises(TypeError, match='model.num_querys is not an option of PluginDETR$'):
        build(small_plugin_cfg, num_querys=5)

"""Anchor points (Anchor DETR / Conditional DETR-style spatial queries): the
queries' positions are the memory's sine encoding of a learned point, boxes
are offsets from the point, and groups and prediction still work."""
import copy

import torch
from torch import nn

from mmdet.registry import MODELS

from conftest import make_batch


def _anchor_model(cfg, groups=1):
    cfg = copy.deepcopy(cfg)
    cfg.update(queries=dict(type='PluginAnchorPointQueries', num_groups=groups))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_point_encoding_is_the_memory_encoding(small_plugin_cfg):
    model = _anchor_model(small_plugin_cfg)
    feat = torch.zeros(1, 64, 3, 5)
    memory_pos = model.positional_encoding(None, input=feat)[0]  # [d, 3, 5]
    # the memory counts positions 1..h over the map: cell (i, j) is at ((j+1)/w, (i+1)/h)
    points = torch.tensor([[(j + 1) / 5, (i + 1) / 3] for i, j in ((0, 0), (2, 4), (1, 3))])
    encoded = model.queries.point_encoding.encode_points(points)  # [3, d]
    for k, (i, j) in enumerate(((0, 0), (2, 4), (1, 3))):
        assert torch.allclose(encoded[k], memory_pos[:, i, j], atol=1e-4)
    # the queries' positions are the MLP of their points' encoding
    model.queries.pos_mlp = nn.Identity()
    model.eval()
    decoder_inputs, head_inputs = model.queries(torch.zeros(2, 7, 64))
    refs = model.queries.anchors.weight.sigmoid()
    assert torch.allclose(head_inputs['references'][1], refs)
    assert torch.allclose(decoder_inputs['query_pos'][0],
                          model.queries.point_encoding.encode_points(refs))
    assert torch.equal(decoder_inputs['query'][0], model.queries.embedding.weight)


def test_boxes_are_offsets_from_the_points(small_plugin_cfg):
    model = _anchor_model(small_plugin_cfg)
    head = model.bbox_head
    nn.init.zeros_(head.bbox_mlp[-1].weight)
    nn.init.zeros_(head.bbox_mlp[-1].bias)
    refs = torch.tensor([[[0.2, 0.7], [0.9, 0.1]]])  # [B=1, N=2, 2]
    _, boxes = head(torch.randn(3, 1, 2, 64), refs)
    assert torch.allclose(boxes[..., :2], refs.expand(3, -1, -1, -1), atol=1e-6)
    assert torch.allclose(boxes[..., 2:], torch.full((3, 1, 2, 2), 0.5))
    with torch.no_grad():
        head.bbox_mlp[-1].bias.copy_(torch.tensor([1., -2., 0., 0.]))
    _, boxes = head(torch.randn(3, 1, 2, 64), refs)
    expected = torch.sigmoid(torch.logit(refs) + torch.tensor([1., -2.]))
    assert torch.allclose(boxes[0, ..., :2], expected, atol=1e-6)


def test_anchor_points_with_groups_train_and_predict(small_plugin_cfg):
    model = _anchor_model(small_plugin_cfg, groups=2)
    assert model.queries.anchors.weight.shape == (20, 2)
    points = model.queries.anchors.weight.sigmoid()
    assert ((points > 0) & (points < 1)).all()
    inputs, samples = make_batch([(64, 64), (64, 80)], num_gts=[2, 3])
    model.train()
    losses = model.loss(inputs, samples)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.queries.anchors.weight.grad.abs().sum() > 0
    assert model.queries.pos_mlp[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        results = model.predict(inputs, samples)
        cls_scores, boxes = model(inputs, samples, mode='tensor')
    assert results[0].pred_instances.query_inds.max() < 10
    assert boxes.shape == (3, 2, 10, 4)
    # the first query's box centre is its point moved by the head's offset
    assert cls_scores.shape == (3, 2, 10, 6)


def test_points_need_an_encoding_of_points():
    import pytest
    with pytest.raises(ValueError, match='model.queries.positional_encoding must encode points'):
        MODELS.build(dict(type='PluginAnchorPointQueries', embed_dims=64,
                          positional_encoding=dict(type='PluginLearnedPositionalEncoding')))
    with pytest.raises(ValueError, match='num_feats \\(16\\) must be half of embed_dims'):
        MODELS.build(dict(type='PluginAnchorPointQueries', embed_dims=64,
                          positional_encoding=dict(num_feats=16)))

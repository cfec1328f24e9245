"""``model.encoder_head``: an mmdet dense head trained on the encoder's memory
(Co-DETR's one-to-many auxiliary head), in training only."""
import copy

import pytest
import torch

from mmdet.registry import MODELS

from conftest import EMBED_DIMS, make_batch


def atss_head(stride: int = 32, in_channels: int = EMBED_DIMS, **kwargs) -> dict:
    """mmdet's ATSSHead on one level: 1 conv, anchors of 4 strides' side."""
    cfg = dict(
        type='ATSSHead', num_classes=5, in_channels=in_channels, stacked_convs=1,
        feat_channels=EMBED_DIMS,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4,
                              scales_per_octave=1, strides=[stride]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1,
                       pos_weight=-1, debug=False))
    cfg.update(kwargs)
    return cfg


@pytest.fixture
def with_head_cfg(small_plugin_cfg):
    cfg = copy.deepcopy(small_plugin_cfg)
    cfg['encoder_head'] = atss_head()
    return cfg


def test_encoder_head_reads_the_memory_as_a_map(with_head_cfg):
    torch.manual_seed(0)
    model = MODELS.build(with_head_cfg)
    model.init_weights()
    model.train()
    inputs, samples = make_batch([(128, 96), (96, 128)], num_gts=[3, 2])
    losses = model.loss(inputs, samples)
    enc = {k: v for k, v in losses.items() if k.startswith('enc.')}
    assert set(enc) == {'enc.loss_cls', 'enc.loss_bbox', 'enc.loss_centerness'}
    # DETR's own losses are those of the model without the head
    assert 'loss_cls' in losses and 'd0.loss_bbox' in losses

    # the same losses from the memory rearranged by hand: token i * w + j is cell (i, j)
    feats = model.extract_feat(inputs)
    encoder_inputs, _ = model.pre_transformer(feats, samples)
    memory = model.forward_encoder(**encoder_inputs)['memory']  # [B, h*w, d]
    batch_size, _, feat_h, feat_w = feats[-1].shape
    assert (feat_h, feat_w) == (4, 4)
    memory_map = torch.zeros(batch_size, EMBED_DIMS, feat_h, feat_w)
    for i in range(feat_h):
        for j in range(feat_w):
            memory_map[:, :, i, j] = memory[:, i * feat_w + j]
    expected = model.encoder_head.loss((memory_map, ), samples)
    for key, value in expected.items():
        got = losses[f'enc.{key}']
        got = sum(got) if isinstance(got, list) else got
        value = sum(value) if isinstance(value, list) else value
        assert torch.allclose(got, value, atol=1e-5), key
    total = sum(sum(v) if isinstance(v, list) else v for v in enc.values())
    assert float(total) > 0


def test_encoder_head_trains_backbone_and_encoder_only(with_head_cfg):
    with_head_cfg['backbone']['frozen_stages'] = -1
    torch.manual_seed(0)
    model = MODELS.build(with_head_cfg)
    model.train()
    inputs, samples = make_batch([(64, 64), (64, 64)], num_gts=[2, 1])
    losses = model.loss(inputs, samples)
    enc = [v for k, v in losses.items() if k.startswith('enc.')]
    total = sum(sum(v) if isinstance(v, list) else v for v in enc)
    total.backward()

    def grad_norm(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters()
                   if p.grad is not None)

    assert grad_norm(model.encoder_head) > 0
    assert grad_norm(model.encoder) > 0
    assert grad_norm(model.neck) > 0
    assert grad_norm(model.backbone.layer4) > 0
    assert grad_norm(model.decoder) == 0
    assert grad_norm(model.bbox_head) == 0


def test_test_time_is_unchanged_and_checkpoints_move_both_ways(with_head_cfg,
                                                               small_plugin_cfg):
    torch.manual_seed(0)
    with_head = MODELS.build(with_head_cfg)
    with_head.init_weights()
    plain = MODELS.build(small_plugin_cfg)
    plain.load_state_dict(with_head.state_dict())  # the guard drops encoder_head.*
    inputs, samples = make_batch([(64, 64), (64, 80)], num_gts=[2, 3])

    def refuse(*args, **kwargs):
        raise AssertionError('the encoder head ran at test time')

    with_head.encoder_head.forward = refuse
    with_head.eval()
    plain.eval()
    with torch.no_grad():
        got = with_head.predict(inputs, copy.deepcopy(samples))
        expected = plain.predict(inputs, copy.deepcopy(samples))
    for a, b in zip(got, expected):
        assert torch.allclose(a.pred_instances.bboxes, b.pred_instances.bboxes, atol=1e-5)
        assert torch.allclose(a.pred_instances.scores, b.pred_instances.scores, atol=1e-6)

    # a checkpoint without the head into a model with one: the head keeps its values
    fresh = MODELS.build(with_head_cfg)
    before = {k: v.clone() for k, v in fresh.encoder_head.state_dict().items()}
    fresh.load_state_dict(plain.state_dict())
    for key, value in fresh.encoder_head.state_dict().items():
        assert torch.equal(value, before[key])
    assert torch.equal(fresh.queries.embedding.weight, plain.queries.embedding.weight)


def test_bad_encoder_heads_are_named(small_plugin_cfg):
    def build(head):
        cfg = copy.deepcopy(small_plugin_cfg)
        cfg['encoder_head'] = head
        return MODELS.build(cfg)

    with pytest.raises(ValueError, match=r'model.encoder_head.in_channels \(256\) must be'):
        build(atss_head(in_channels=256))
    with pytest.raises(ValueError, match='model.encoder_head needs a type'):
        build(dict(in_channels=EMBED_DIMS))
    two_levels = atss_head()
    two_levels['anchor_generator']['strides'] = [16, 32]
    with pytest.raises(ValueError, match=r'model.encoder_head has 2 levels'):
        build(two_levels)
    model = build(atss_head(stride=16))  # the memory is at stride 32
    model.train()
    inputs, samples = make_batch([(64, 64)], num_gts=[1])
    with pytest.raises(ValueError, match=r"encoder_head's stride is \(16, 16\) but the "
                                         r"memory's is 32"):
        model.loss(inputs, samples)


def proposal_cfg(cfg, groups=1, denoising=False):
    cfg = copy.deepcopy(cfg)
    cfg['encoder_head'] = atss_head()
    cfg['queries'] = dict(type='PluginProposalQueries', num_groups=groups)
    if denoising:
        cfg['queries'] = dict(type='PluginDenoisingQueries', queries=cfg['queries'],
                              num_dn_groups=2)
        cfg['bbox_head']['criterion'] = dict(type='PluginSetCriterion', cls_loss='focal')
        cfg['train_cfg']['assigner']['match_costs'] = [
            dict(type='PluginFocalLossCost', weight=2.0), dict(type='PluginBBoxL1Cost', weight=5.0),
            dict(type='PluginIoUCost', weight=2.0)]
    return cfg


def test_proposals_are_the_anchor_heads_boxes_and_scores(small_plugin_cfg):
    torch.manual_seed(0)
    model = MODELS.build(proposal_cfg(small_plugin_cfg))
    # a 96 x 64 image padded to 128 x 96: a 4 x 3 memory at stride 32
    _, samples = make_batch([(96, 64), (128, 96)], num_gts=[1, 1])
    h, w = 4, 3
    cls = torch.full((2, 5, h, w), -3.0)
    cls[0, 2, 1, 1] = 2.0  # image 0: class 2 at cell (1, 1)
    cls[0, 4, 3, 0] = 4.0  # image 0: a higher score on padding (row 3 is y = 96)
    deltas = torch.zeros(2, 4, h, w)
    deltas[1, 2:, 0, 2] = 1.0  # image 1, cell (0, 2): sides x exp(0.2)
    centerness = torch.zeros(2, 1, h, w)
    proposals = model.encoder_proposals(([cls], [deltas], [centerness]), (h, w), samples)
    assert proposals['boxes'].shape == (2, h * w, 4)
    # anchors: side 4 * 32 = 128 px, centred on (32 j, 32 i), clipped to the image
    boxes = proposals['boxes'][0].reshape(h, w, 4)
    x1, y1, x2, y2 = 32 - 64, 32 - 64, 32 + 64, 32 + 64  # cell (1, 1)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, 64), min(y2, 96)
    expected = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    expected = expected / torch.tensor([64., 96., 64., 96.])  # [0.5, 0.5, 1, 1]
    assert torch.allclose(boxes[1, 1], expected, atol=1e-6)
    side = 128 * torch.exp(torch.tensor(0.2)).item()  # 0.1 / 0.2 target stds: 1.0 -> x e^0.2
    box = proposals['boxes'][1].reshape(h, w, 4)[0, 2]
    x1, x2, y2 = max(64 - side / 2, 0), min(64 + side / 2, 96), min(side / 2, 128)
    assert torch.allclose(box, torch.tensor([(x1 + x2) / 2 / 96, y2 / 2 / 128,
                                             (x2 - x1) / 96, y2 / 128]), atol=1e-5)
    scores = proposals['scores'][0].reshape(h, w)
    assert abs(float(scores[1, 1]) - torch.sigmoid(torch.tensor(2.0)).item() * 0.5) < 1e-6
    assert float(scores[3, 0]) == -1  # centred on padding
    assert abs(float(scores[0, 0]) - torch.sigmoid(torch.tensor(-3.0)).item() * 0.5) < 1e-6

    # the queries' anchor boxes are the N best proposals, the same for every group
    model.queries.num_groups = 2
    model.queries.embedding = torch.nn.Embedding(2 * 10, EMBED_DIMS)
    model.train()
    memory = torch.zeros(2, h * w, EMBED_DIMS)
    decoder_inputs, head_inputs = model.queries(memory, samples, proposals=proposals)
    top = proposals['scores'].topk(10, dim=1).indices
    refs = proposals['boxes'].gather(1, top[..., None].expand(-1, -1, 4))
    assert torch.equal(head_inputs['references'], refs.repeat(1, 2, 1))
    assert torch.equal(head_inputs['references'][0, 0], boxes[1, 1])
    assert head_inputs['num_query_groups'] == 2
    assert decoder_inputs['query'].shape == decoder_inputs['query_pos'].shape == (2, 20,
                                                                                  EMBED_DIMS)
    assert torch.equal(decoder_inputs['query'][1], model.queries.embedding.weight)


def test_proposal_queries_train_with_denoising_and_predict(small_plugin_cfg):
    torch.manual_seed(0)
    model = MODELS.build(proposal_cfg(small_plugin_cfg, groups=3, denoising=True))
    model.init_weights()
    model.train()
    inputs, samples = make_batch([(128, 96), (96, 128)], num_gts=[3, 2])
    losses = model.loss(inputs, samples)
    assert {'loss_cls', 'dn_loss_bbox', 'enc.loss_cls', 'enc.loss_bbox'} <= set(losses)
    model.eval()
    with torch.no_grad():
        results = model.predict(inputs, samples)
    assert len(results[0].pred_instances) == 10
    # the decoder starts at the proposals: a query's box is its anchor box refined
    with torch.no_grad():
        head_inputs = model.forward_transformer(model.extract_feat(inputs), samples)
    assert head_inputs['references'].shape == (2, 10, 4)


def test_proposal_queries_need_an_anchor_head(small_plugin_cfg):
    cfg = proposal_cfg(small_plugin_cfg)
    del cfg['encoder_head']
    with pytest.raises(ValueError, match='must be an mmdet anchor head'):
        MODELS.build(cfg)
    from mmdet_detr_plugin.deploy.export import check_exportable
    with pytest.raises(TypeError, match=r'model.queries \(PluginProposalQueries\) cannot be '
                                        'exported'):
        check_exportable(MODELS.build(proposal_cfg(small_plugin_cfg)))

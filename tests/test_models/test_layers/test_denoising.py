"""Denoising training (DN-DETR): who sees whom, the noise, the losses, and
the model with it in training and at test time."""
import copy

import pytest
import torch

from mmdet.registry import MODELS
from mmdet_detr_plugin.models.layers.denoising import (denoising_attention_mask, noise_boxes,
                                                       noise_labels)

from conftest import make_batch

FOCAL = dict(
    criterion=dict(type='PluginSetCriterion', cls_loss='focal'),
    assigner=dict(type='PluginHungarianAssigner', match_costs=[
        dict(type='PluginFocalLossCost', weight=2.0),
        dict(type='PluginBBoxL1Cost', weight=5.0),
        dict(type='PluginIoUCost', weight=2.0)]))


def dn_cfg(base: dict, inner: str = 'PluginAnchorPointQueries', num_groups: int = 2,
           focal: bool = True, **dn) -> dict:
    cfg = copy.deepcopy(base)
    cfg['queries'] = dict(type='PluginDenoisingQueries',
                          queries=dict(type=inner, num_groups=num_groups), **dn)
    if focal:
        cfg['bbox_head']['criterion'] = FOCAL['criterion']
        cfg['train_cfg'] = dict(assigner=FOCAL['assigner'])
    return cfg


@pytest.mark.parametrize('groups,max_gts,num_matching,matching_groups',
                         [(1, 1, 3, 1), (2, 3, 4, 2), (5, 4, 60, 6), (3, 0, 4, 1)])
def test_attention_mask_who_sees_whom(groups, max_gts, num_matching, matching_groups):
    from mmdet_detr_plugin.models.layers.queries import group_attention_mask
    per_group = num_matching // matching_groups
    matching_mask = (group_attention_mask(matching_groups, per_group, 'cpu')
                     if matching_groups > 1 else None)
    mask = denoising_attention_mask(groups, max_gts, num_matching, matching_mask, 'cpu')
    num_dn = groups * max_gts
    assert mask.shape == (num_dn + num_matching, num_dn + num_matching)
    for i in range(num_dn + num_matching):
        for j in range(num_dn + num_matching):
            if i < num_dn and j < num_dn:  # denoising: only its own group
                blocked = i // max_gts != j // max_gts
            elif i < num_dn:  # denoising queries see the matching queries
                blocked = False
            elif j < num_dn:  # matching queries never see the answers
                blocked = True
            else:  # matching: the scheme's own groups
                blocked = (i - num_dn) // per_group != (j - num_dn) // per_group
            assert bool(mask[i, j]) == blocked, (i, j)


def test_box_noise_stays_within_its_bounds_and_zero_noise_is_identity():
    gen = torch.Generator().manual_seed(0)
    centres = 0.3 + 0.4 * torch.rand(2000, 2, generator=gen)
    sides = 0.05 + 0.2 * torch.rand(2000, 2, generator=gen)
    boxes = torch.cat((centres, sides), 1)  # far enough from the borders: no clamping
    noisy = noise_boxes(boxes, 0.4, generator=gen)
    shift = (noisy[:, :2] - boxes[:, :2]).abs() / (boxes[:, 2:] / 2)
    scale = (noisy[:, 2:] - boxes[:, 2:]).abs() / boxes[:, 2:]
    assert shift.max() <= 0.4 + 1e-5 and scale.max() <= 0.4 + 1e-5
    # uniform in the bounds: the extremes are reached, the mean shift is 0.2
    assert shift.max() > 0.39 and scale.max() > 0.39
    assert shift.mean() == pytest.approx(0.2, abs=0.01)
    assert torch.equal(noise_boxes(boxes, 0.0, generator=gen), boxes)
    # near the border the result stays a normalised box
    edge = torch.tensor([[0.01, 0.99, 0.3, 0.3]]).repeat(100, 1)
    noisy = noise_boxes(edge, 1.0, generator=gen)
    assert noisy.min() >= 0 and noisy.max() <= 1


def test_label_noise_flips_at_its_rate_to_valid_classes():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (20000, ), generator=gen)
    assert torch.equal(noise_labels(labels, 0.0, 4, generator=gen), labels)
    noisy = noise_labels(labels, 0.2, 4, generator=gen)
    assert noisy.min() >= 0 and noisy.max() < 4
    # a flip draws any of the 4 classes: 0.2 * 3 / 4 = 15 % of the labels change
    assert (noisy != labels).float().mean().item() == pytest.approx(0.15, abs=0.01)


def test_denoising_losses_are_zero_at_a_perfect_prediction():
    from mmdet_detr_plugin.models.losses import PluginSetCriterion
    labels = torch.tensor([0, 2, 1])
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.2, 0.3, 0.1, 0.1], [0.7, 0.6, 0.3, 0.2]])
    scales = torch.tensor([[100., 80., 100., 80.]]).repeat(3, 1)
    for cls_loss in ('focal', 'ce'):
        crit = PluginSetCriterion(num_classes=3, cls_loss=cls_loss)
        logits = torch.full((2, 3, 4), -30.)
        logits[:, torch.arange(3), labels] = 30.
        losses = crit.denoising(logits, boxes.expand(2, -1, -1), labels, boxes, scales)
        assert set(losses) == {'dn_loss_cls', 'dn_loss_bbox', 'dn_loss_iou', 'd0.dn_loss_cls',
                               'd0.dn_loss_bbox', 'd0.dn_loss_iou'}
        for value in losses.values():
            assert value.item() == pytest.approx(0., abs=1e-6)
        # a wrong box: L1 = sum of |diffs| / 3 boxes, weighted 5
        preds = boxes.clone()
        preds[0, 0] += 0.1
        losses = crit.denoising(logits, preds.expand(2, -1, -1), labels, boxes, scales)
        assert losses['dn_loss_bbox'].item() == pytest.approx(5 * 0.1 / 3, rel=1e-5)


def test_denoising_normaliser_is_averaged_over_processes(monkeypatch):
    from mmdet_detr_plugin.models.losses import set_criterion
    crit = set_criterion.PluginSetCriterion(num_classes=3)
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.2, 0.3, 0.1, 0.1]])
    preds = (boxes + 0.05).expand(1, -1, -1)
    scales = torch.ones(2, 4) * 64
    logits = torch.zeros(1, 2, 4)
    alone = crit.denoising(logits, preds, torch.tensor([0, 1]), boxes, scales)
    # another process with 6 boxes: the mean count is 4, twice this one's
    monkeypatch.setattr(set_criterion, 'reduce_mean', lambda t: t * 2)
    synced = crit.denoising(logits, preds, torch.tensor([0, 1]), boxes, scales)
    for key in alone:
        assert synced[key].item() == pytest.approx(alone[key].item() / 2, rel=1e-5)


@pytest.mark.parametrize('inner', ['PluginDETRQueries', 'PluginAnchorPointQueries',
                                   'PluginAnchorBoxQueries'])
def test_matching_queries_do_not_see_denoising_queries(small_plugin_cfg, inner):
    """With the indicator's "matching" row at zero, the matching queries of a
    model with denoising compute exactly what the same model without it
    computes: the denoising queries are invisible to them."""
    torch.manual_seed(0)
    model = MODELS.build(dn_cfg(small_plugin_cfg, inner))
    plain_cfg = copy.deepcopy(small_plugin_cfg)
    plain_cfg['queries'] = dict(type=inner, num_groups=2)
    plain_cfg['bbox_head']['criterion'] = FOCAL['criterion']
    plain_cfg['train_cfg'] = dict(assigner=FOCAL['assigner'])
    plain = MODELS.build(plain_cfg)
    model.init_weights()
    with torch.no_grad():
        model.queries.indicator.weight[0].zero_()
    state = {k.replace('queries.matching.', 'queries.'): v
             for k, v in model.state_dict().items()
             if not k.startswith(('queries.label_embedding', 'queries.indicator',
                                  'queries.box_'))}
    plain.load_state_dict(state)
    model.train()
    plain.train()
    inputs, samples = make_batch([(64, 64), (64, 80)], num_gts=[2, 3])
    out = model.forward_transformer(model.extract_feat(inputs), samples)
    ref = plain.forward_transformer(plain.extract_feat(inputs), samples)
    dn = out['denoising']
    assert dn['num_queries'] == 5 * 3 and dn['num_groups'] == 5
    assert out['hidden_states'].shape == (3, 2, 15 + 20, 64)
    assert torch.allclose(out['hidden_states'][:, :, 15:], ref['hidden_states'], atol=1e-5)
    if inner != 'PluginDETRQueries':
        refs = out['references']
        assert refs.shape == (2, 35, 4 if inner == 'PluginAnchorBoxQueries' else 2)
        assert torch.equal(refs[:, 15:], ref['references'])
    # the clean targets: image 1's 3 boxes, image 0's 2 and one padded slot
    assert dn['valid'].tolist() == [[True, True, False], [True, True, True]]
    assert torch.equal(dn['labels'][1], samples[1].gt_instances.labels)


def test_denoising_groups_do_not_see_each_other(small_plugin_cfg):
    torch.manual_seed(0)
    model = MODELS.build(dn_cfg(small_plugin_cfg, num_dn_groups=3, label_noise=0.0,
                                box_noise=0.0))
    model.init_weights()
    model.train()
    inputs, samples = make_batch([(64, 64)], num_gts=[2])
    feats = model.extract_feat(inputs)
    first = model.forward_transformer(feats, samples)['hidden_states']
    # zero noise: the three groups are the same queries, so the same outputs
    assert torch.allclose(first[:, :, 0:2], first[:, :, 2:4], atol=1e-5)
    assert torch.allclose(first[:, :, 0:2], first[:, :, 4:6], atol=1e-5)


def test_no_denoising_queries_at_test_time(small_plugin_cfg):
    model = MODELS.build(dn_cfg(small_plugin_cfg))
    model.init_weights()
    model.eval()
    inputs, samples = make_batch([(64, 64), (64, 80)], num_gts=[2, 3])
    with torch.no_grad():
        out = model.forward_transformer(model.extract_feat(inputs), samples)
        results = model.predict(inputs, samples)
    assert 'denoising' not in out
    assert out['hidden_states'].shape[2] == 10  # N queries, first group only
    assert len(results[0].pred_instances) == 10


@pytest.mark.parametrize('num_gts', [[0, 3], [0, 0]])
def test_images_without_boxes(small_plugin_cfg, num_gts):
    torch.manual_seed(0)
    model = MODELS.build(dn_cfg(small_plugin_cfg))
    model.init_weights()
    model.train()
    inputs, samples = make_batch([(64, 64), (64, 80)], num_gts=num_gts)
    losses = model.loss(inputs, samples)
    assert {'dn_loss_cls', 'dn_loss_bbox', 'dn_loss_iou', 'd1.dn_loss_iou'} <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    # every parameter is in the graph (distributed training needs it)
    for name, p in model.named_parameters():
        if p.requires_grad and not name.startswith('backbone.'):
            assert p.grad is not None, name
    if sum(num_gts) == 0:
        assert losses['dn_loss_bbox'].item() == 0.


def test_more_objects_than_queries(small_plugin_cfg):
    cfg = dn_cfg(small_plugin_cfg, num_groups=1)
    cfg['num_queries'] = 2
    cfg['test_cfg'] = dict(max_per_img=2)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    inputs, samples = make_batch([(64, 64), (64, 80)], num_gts=[5, 1])
    out = model.forward_transformer(model.extract_feat(inputs), samples)
    assert out['hidden_states'].shape[2] == 5 * 5 + 2
    losses = model.loss(inputs, samples)
    assert all(torch.isfinite(v) for v in losses.values())


def test_denoising_loss_matches_a_hand_count(small_plugin_cfg):
    """The head's denoising losses compare query g * M + j with box j."""
    model = MODELS.build(dn_cfg(small_plugin_cfg, focal=False))
    head = model.bbox_head
    labels = torch.tensor([[1, 3], [2, 0]])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.2]],
                          [[0.6, 0.4, 0.2, 0.3], [0., 0., 0., 0.]]])
    valid = torch.tensor([[True, True], [True, False]])
    preds = boxes.repeat(1, 2, 1)[None].clone()  # [1, B, G * M, 4]: perfect
    preds[0, 0, 3, 0] += 0.2  # image 0, group 1, box 1
    logits = torch.zeros(1, 2, 4, 6)
    metas = [dict(img_shape=(64, 64)), dict(img_shape=(64, 64))]
    head.criterion.aux_loss = False
    losses = head.denoising_loss(logits, preds, dict(num_groups=2, labels=labels, boxes=boxes,
                                                     valid=valid), metas)
    # 6 valid denoising queries (3 boxes x 2 groups), one off by 0.2 in x
    assert losses['dn_loss_bbox'].item() == pytest.approx(5 * 0.2 / 6, rel=1e-5)
    # uniform logits over 6 classes: cross-entropy log(6) each
    assert losses['dn_loss_cls'].item() == pytest.approx(torch.log(torch.tensor(6.)).item(),
                                                         rel=1e-5)


def test_bad_denoising_settings_name_the_key(small_plugin_cfg):
    for dn, key in [(dict(num_dn_groups=0), 'model.queries.num_dn_groups'),
                    (dict(label_noise=1.5), 'model.queries.label_noise'),
                    (dict(box_noise=-0.1), 'model.queries.box_noise')]:
        with pytest.raises(ValueError, match=key):
            MODELS.build(dn_cfg(small_plugin_cfg, **dn))
    cfg = dn_cfg(small_plugin_cfg)
    cfg['queries']['queries'] = dict(type='PluginPatchQueries', num_patches=2,
                                     feature_channels=512)
    with pytest.raises(ValueError, match='cannot take denoising queries'):
        MODELS.build(cfg)


def test_checkpoints_load_across_denoising(small_plugin_cfg, caplog):
    """A checkpoint trained with denoising serves a config without it, and a
    plain checkpoint starts a denoising fine-tune."""
    torch.manual_seed(0)
    dn_model = MODELS.build(dn_cfg(small_plugin_cfg))
    dn_model.init_weights()
    plain_cfg = copy.deepcopy(small_plugin_cfg)
    plain_cfg['queries'] = dict(type='PluginAnchorPointQueries', num_groups=2)
    plain_cfg['bbox_head']['criterion'] = FOCAL['criterion']
    plain_cfg['train_cfg'] = dict(assigner=FOCAL['assigner'])
    plain = MODELS.build(plain_cfg)
    plain.load_state_dict(dn_model.state_dict())
    assert torch.equal(plain.queries.anchors.weight, dn_model.queries.matching.anchors.weight)
    fresh = MODELS.build(dn_cfg(small_plugin_cfg))
    label_embedding = fresh.queries.label_embedding.weight.clone()
    fresh.load_state_dict(plain.state_dict())
    assert torch.equal(fresh.queries.matching.embedding.weight, plain.queries.embedding.weight)
    assert torch.equal(fresh.queries.label_embedding.weight, label_embedding)
    # the matching indicator starts at zero: the plain checkpoint's predictions are kept
    assert torch.equal(fresh.queries.indicator.weight[0], torch.zeros(64))
    plain.eval()
    fresh.eval()
    inputs, samples = make_batch([(64, 64)], num_gts=[1])
    with torch.no_grad():
        want = plain.forward_transformer(plain.extract_feat(inputs), samples)
        got = fresh.forward_transformer(fresh.extract_feat(inputs), samples)
    assert torch.allclose(got['hidden_states'], want['hidden_states'], atol=1e-6)


def test_a_head_without_denoising_losses_is_refused(small_plugin_cfg):
    cfg = dn_cfg(small_plugin_cfg, focal=False)
    cfg['bbox_head'] = dict(type='PluginUPDETRHead', num_classes=1, embed_dims=64,
                            feature_channels=512)
    with pytest.raises(ValueError, match='has no denoising losses'):
        MODELS.build(cfg)


def test_an_images_denoising_does_not_depend_on_its_batch(small_plugin_cfg):
    """With hidden padding slots, image 0's denoising queries compute the same
    alone (no padding) as next to an image with more boxes (padding)."""
    torch.manual_seed(0)
    model = MODELS.build(dn_cfg(small_plugin_cfg, num_dn_groups=2, label_noise=0.0,
                                box_noise=0.0, hide_padding=True))
    model.init_weights()
    model.train()
    inputs, samples = make_batch([(64, 64), (64, 64)], num_gts=[2, 4])
    out = model.forward_transformer(model.extract_feat(inputs), samples)
    alone = model.forward_transformer(model.extract_feat(inputs[:1]), samples[:1])
    assert alone['hidden_states'].shape[2] == 2 * 2 + 20
    batched = out['hidden_states'][:, 0]  # [L, 2 * 4 + 20, d]: groups of 4 slots
    for g in range(2):
        assert torch.allclose(batched[:, 4 * g:4 * g + 2],
                              alone['hidden_states'][:, 0, 2 * g:2 * g + 2], atol=1e-5)
    assert torch.allclose(batched[:, 8:], alone['hidden_states'][:, 0, 4:], atol=1e-5)
    # by default (DN-DETR) the padding slots are queries like the others: visible
    model.queries.hide_padding = False
    out = model.forward_transformer(model.extract_feat(inputs), samples)
    assert out['hidden_states'].shape == (3, 2, 28, 64)
    assert not torch.allclose(out['hidden_states'][:, 0, :2], batched[:, :2], atol=1e-5)

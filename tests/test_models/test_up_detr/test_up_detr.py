"""PluginUPDETR: the reconstruction loss against a hand computation, the
frozen backbone, patch features, and the loss of a whole step."""
import copy

import pytest
import torch
from mmengine.structures import InstanceData

from mmdet.registry import MODELS
from mmdet_detr_plugin.models.losses import PluginSetCriterion

from conftest import SMALL_PLUGIN_DETR, make_batch

PATCHES, QUERIES, CHANNELS = 5, 10, 512  # ResNet-18's C5


def updetr_cfg(**changes) -> dict:
    cfg = copy.deepcopy(SMALL_PLUGIN_DETR)
    cfg.update(type='PluginUPDETR', num_queries=QUERIES,
               queries=dict(num_patches=PATCHES, feature_channels=CHANNELS),
               data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                      std=[58.395, 57.12, 57.375], bgr_to_rgb=True))
    cfg['backbone'] = dict(cfg['backbone'], frozen_stages=-1,
                           norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False)
    cfg['bbox_head'] = dict(type='PluginUPDETRHead', embed_dims=64, feature_channels=CHANNELS)
    cfg['encoder']['pre_norm'] = cfg['decoder']['pre_norm'] = True
    cfg.update(changes)
    return cfg


def patch_batch(seed: int = 0, patch_size: int = 32):
    """A batch of 2 images with PATCHES patch boxes and patches each."""
    inputs, samples = make_batch([(64, 80), (72, 64)], [PATCHES, PATCHES], num_classes=1,
                                 seed=seed)
    gen = torch.Generator().manual_seed(seed)
    for s in samples:
        s.gt_instances.labels = torch.zeros(PATCHES, dtype=torch.long)
        s.query_patches = torch.randint(0, 256, (PATCHES, 3, patch_size, patch_size),
                                        generator=gen, dtype=torch.uint8)
    return inputs, samples


def test_feature_loss_against_hand_computation():
    torch.manual_seed(0)
    crit = PluginSetCriterion(num_classes=1, loss_feature_weight=0.7)
    layers, batch, queries, channels = 3, 2, 6, 7
    cls = torch.randn(layers, batch, queries, 2)
    boxes = torch.rand(layers, batch, queries, 4) * 0.5 + 0.25
    feats = torch.randn(layers, batch, queries, channels)
    gt_labels = [torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long)]
    gt_boxes = [torch.rand(2, 4) * 0.5 + 0.25, torch.rand(3, 4) * 0.5 + 0.25]
    targets = [torch.randn(2, channels), torch.randn(3, channels)]
    # per image (query_inds [L, K_b], gt_inds [L, K_b]), a different matching per layer
    matches = [(torch.tensor([[0, 3], [1, 2], [5, 4]]), torch.tensor([[1, 0], [0, 1], [1, 0]])),
               (torch.tensor([[2, 0, 1], [3, 4, 5], [0, 1, 2]]),
                torch.tensor([[0, 1, 2], [2, 1, 0], [1, 2, 0]]))]
    losses = crit(cls, boxes, matches, gt_labels, gt_boxes, [(40, 50), (60, 30)],
                  feature_preds=feats, feature_targets=targets)
    for layer in range(layers):
        total = 0.
        for b, (q, g) in enumerate(matches):
            for qi, gi in zip(q[layer].tolist(), g[layer].tolist()):
                p = feats[layer, b, qi] / feats[layer, b, qi].norm()
                t = targets[b][gi] / targets[b][gi].norm()
                total += float(((p - t) ** 2).sum())
        key = 'loss_feature' if layer == layers - 1 else f'd{layer}.loss_feature'
        assert losses[key].item() == pytest.approx(0.7 * total / 5, rel=1e-5)
    # the other terms are DETR's: the same as without features
    plain = crit(cls, boxes, matches, gt_labels, gt_boxes, [(40, 50), (60, 30)])
    assert set(losses) - set(plain) == {'loss_feature', 'd0.loss_feature', 'd1.loss_feature'}
    for key, value in plain.items():
        assert torch.equal(value, losses[key])
    with pytest.raises(ValueError, match='both feature_preds and feature_targets'):
        crit(cls, boxes, matches, gt_labels, gt_boxes, [(40, 50), (60, 30)], feature_preds=feats)


def test_patch_features_are_pooled_backbone_features():
    torch.manual_seed(0)
    model = MODELS.build(updetr_cfg()).eval()
    _, samples = patch_batch()
    feats = model.patch_features(samples)  # [2, 5, 512]
    patches = samples[1].query_patches[3:4].float()[:, [2, 1, 0]]  # BGR -> RGB
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    expected = model.backbone((patches - mean) / std)[-1].mean((2, 3))[0]
    assert feats.shape == (2, PATCHES, CHANNELS)
    torch.testing.assert_close(feats[1, 3], expected, rtol=1e-4, atol=1e-5)


def test_frozen_backbone_gets_no_gradient_and_stays_in_eval():
    torch.manual_seed(0)
    model = MODELS.build(updetr_cfg())
    model.init_weights()
    model.train()
    assert not model.backbone.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    inputs, samples = patch_batch()
    losses = model.loss(inputs, samples)
    assert {'loss_cls', 'loss_bbox', 'loss_iou', 'loss_feature', 'd1.loss_feature'} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    # the batch norm statistics did not move either
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, before[k]), k
    for name in ('queries.patch2query.weight', 'bbox_head.feature_align.layers.1.weight',
                 'encoder.layers.0.ffn.linear1.weight', 'queries.embedding.weight',
                 'neck.proj.weight'):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_unfrozen_backbone_learns():
    torch.manual_seed(0)
    model = MODELS.build(updetr_cfg(freeze_backbone=False)).train()
    inputs, samples = patch_batch()
    sum(model.loss(inputs, samples).values()).backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


def test_prediction_carries_query_indices():
    torch.manual_seed(0)
    model = MODELS.build(updetr_cfg()).eval()
    inputs, samples = patch_batch()
    with torch.no_grad():
        results = model.predict(inputs, samples)
    pred = results[0].pred_instances
    assert len(pred.bboxes) == 10 and set(pred.query_inds.tolist()) == set(range(QUERIES))
    assert (pred.labels == 0).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match='feature_channels'):
        MODELS.build(updetr_cfg(queries=dict(num_patches=PATCHES, feature_channels=256)))
    cfg = updetr_cfg()
    cfg['bbox_head'] = dict(type='PluginDETRHead', num_classes=1, embed_dims=64)
    with pytest.raises(ValueError, match='model.bbox_head must reconstruct'):
        MODELS.build(cfg)
    model = MODELS.build(updetr_cfg())
    inputs, samples = make_batch([(64, 64)], [PATCHES], num_classes=1)
    with pytest.raises(ValueError, match='query_patches'):
        model.loss(inputs, samples)
    # a patch box without area inside the image cannot be matched to its feature
    inputs, samples = patch_batch()
    samples[0].gt_instances.bboxes[2] = torch.tensor([5., 5., 5., 9.])
    with pytest.raises(ValueError, match='patch boxes'):
        model.loss(inputs, samples)


def test_head_loss_needs_patch_features():
    head = MODELS.build(dict(type='PluginUPDETRHead', embed_dims=16, feature_channels=8,
                             train_cfg=dict(assigner=dict(type='PluginHungarianAssigner'))))
    sample = make_batch([(32, 32)], [2], num_classes=1)[1]
    with pytest.raises(ValueError, match='patch_features'):
        head.loss(torch.randn(2, 1, 4, 16), sample)
    gt = InstanceData(bboxes=torch.tensor([[1., 1., 9., 9.]]), labels=torch.tensor([0]))
    sample[0].gt_instances = gt
    losses = head.loss(torch.randn(2, 1, 4, 16), sample, patch_features=torch.randn(1, 1, 8))
    assert losses['loss_feature'] > 0 and 'd0.loss_feature' in losses

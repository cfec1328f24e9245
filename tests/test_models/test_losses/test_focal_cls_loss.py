"""The focal classification option (Deformable DETR's convergence aid):
``PluginSetCriterion(cls_loss='focal')``, ``PluginFocalLossCost`` and the
head's sigmoid scoring, checked against hand-computed numbers, torchvision
and mmdet."""
import math

import pytest
import torch
from mmengine.structures import InstanceData
from torchvision.ops import sigmoid_focal_loss as tv_focal

from mmdet.models.task_modules.assigners import FocalLossCost
from mmdet_detr_plugin.models.dense_heads import PluginDETRHead
from mmdet_detr_plugin.models.losses import PluginSetCriterion
from mmdet_detr_plugin.models.task_modules import PluginFocalLossCost


def _focal(p: float, target: int, alpha: float = 0.25, gamma: float = 2.) -> float:
    if target:
        return -alpha * (1 - p)**gamma * math.log(p)
    return -(1 - alpha) * p**gamma * math.log(1 - p)


def test_focal_loss_hand_computed():
    """2 classes (+ unused no-object logit), 2 queries, query 0 matched to class 1."""
    criterion = PluginSetCriterion(num_classes=2, cls_loss='focal', loss_cls_weight=2.,
                                   aux_loss=False)
    logits = torch.tensor([[[[0., 1., 5.], [-1., 2., -3.]]]])  # [1, 1, 2, 3]
    boxes = torch.tensor([[[[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.1]]]])
    matches = [(torch.tensor([[0]]), torch.tensor([[0]]))]
    losses = criterion(logits, boxes, matches, [torch.tensor([1])],
                       [torch.tensor([[0.5, 0.5, 0.2, 0.2]])], [(100, 100)])
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # query 0: class 0 negative, class 1 positive; query 1: both negative; one box
    expected = _focal(s(0.), 0) + _focal(s(1.), 1) + _focal(s(-1.), 0) + _focal(s(2.), 0)
    assert losses['loss_cls'].item() == pytest.approx(2 * expected, rel=1e-5)
    assert losses['loss_bbox'].item() == pytest.approx(0., abs=1e-6)


def test_focal_loss_matches_torchvision_over_layers():
    torch.manual_seed(0)
    num_classes, num_layers = 3, 2
    criterion = PluginSetCriterion(num_classes=num_classes, cls_loss='focal', focal_alpha=0.3,
                                   focal_gamma=1.5)
    logits = torch.randn(num_layers, 2, 4, num_classes + 1)
    boxes = torch.rand(num_layers, 2, 4, 4) * 0.4 + 0.3
    gt_labels = [torch.tensor([2, 0]), torch.tensor([1])]
    gt_boxes = [torch.rand(2, 4) * 0.4 + 0.3, torch.rand(1, 4) * 0.4 + 0.3]
    matches = [(torch.tensor([[0, 3], [1, 2]]), torch.tensor([[1, 0], [0, 1]])),
               (torch.tensor([[2], [0]]), torch.tensor([[0], [0]]))]
    losses = criterion(logits, boxes, matches, gt_labels, gt_boxes, [(64, 64), (64, 64)])
    for layer, key in ((0, 'd0.loss_cls'), (1, 'loss_cls')):
        target = torch.zeros(2, 4, num_classes)
        for b, (q, g) in enumerate(matches):
            for qi, gi in zip(q[layer].tolist(), g[layer].tolist()):
                target[b, qi, gt_labels[b][gi]] = 1
        ref = tv_focal(logits[layer, ..., :num_classes], target, alpha=0.3, gamma=1.5,
                       reduction='sum') / 3  # three boxes
        assert losses[key].item() == pytest.approx(ref.item(), rel=1e-5)


def test_focal_cost_matches_mmdet():
    torch.manual_seed(0)
    logits = torch.randn(6, 4)  # 3 classes + no-object logit
    gt = InstanceData(labels=torch.tensor([2, 0, 2]), bboxes=torch.zeros(3, 4))
    pred = InstanceData(scores=logits, bboxes=torch.zeros(6, 4))
    ours = PluginFocalLossCost(weight=2.)(pred, gt)
    ref = FocalLossCost(weight=2.)(InstanceData(scores=logits[:, :3]), gt)
    assert torch.allclose(ours, ref, atol=1e-6)
    p = torch.sigmoid(logits[1, 2]).item()
    hand = 2 * (_focal(p, 1) - _focal(p, 0))
    assert ours[1, 0].item() == pytest.approx(hand, rel=1e-4)


def test_head_sigmoid_scores_and_prior():
    head = PluginDETRHead(num_classes=2, embed_dims=8,
                          criterion=dict(type='PluginSetCriterion', cls_loss='focal'))
    head.init_weights()
    assert torch.allclose(head.fc_cls.bias, torch.full((3, ), -math.log(99.)))
    logits = torch.tensor([[[[0., 1., 9.], [-2., -3., 9.]]]])  # no-object logit ignored
    boxes = torch.full((1, 1, 2, 4), 0.5)
    res = head.predict_by_feat(logits, boxes, [dict(img_shape=(10, 10))], rescale=False)[0]
    assert res.labels.tolist() == [1, 0]
    assert res.scores.tolist() == pytest.approx([1 / (1 + math.exp(-1.)),
                                                 1 / (1 + math.exp(2.))], rel=1e-6)
    with pytest.raises(ValueError, match='cls_loss'):
        PluginSetCriterion(num_classes=2, cls_loss='bce')

import math

import pytest
import torch
import torch.nn.functional as F

from mmdet_detr_plugin.models.losses import PluginSetCriterion


def test_hand_computed_single_layer():
    """2 classes, 3 queries, 1 image with one box matched to query 1."""
    criterion = PluginSetCriterion(num_classes=2, no_object_weight=0.1, loss_cls_weight=1.,
                                   loss_bbox_weight=5., loss_iou_weight=2., aux_loss=False)
    logits = torch.tensor([[[[0., 0., 0.], [2., 0., 0.], [0., 0., 1.]]]])  # [1, 1, 3, 3]
    boxes = torch.tensor([[[[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.4, 0.4],
                            [0.1, 0.1, 0.1, 0.1]]]])
    gt_boxes = [torch.tensor([[0.5, 0.5, 0.2, 0.4]])]  # normalised cxcywh
    matches = [(torch.tensor([[1]]), torch.tensor([[0]]))]
    losses = criterion(logits, boxes, matches, [torch.tensor([0])], gt_boxes, [(100, 100)])

    # cross-entropy: query 1 -> class 0 (weight 1), queries 0, 2 -> no-object (weight 0.1)
    ce0 = -math.log(1 / 3)
    ce1 = -math.log(math.exp(2) / (math.exp(2) + 2))
    ce2 = -math.log(math.e / (math.e + 2))
    expected_cls = (0.1 * ce0 + 1.0 * ce1 + 0.1 * ce2) / (0.1 + 1.0 + 0.1)
    # L1 on the matched pair: |0.4 - 0.2| + |0.4 - 0.4| = 0.2, one box
    expected_l1 = 5 * 0.2
    # GIoU: pred 40x40 and gt 20x40 share a centre: IoU = 800/1600, enclosure = union
    expected_iou = 2 * (1 - 0.5)
    assert losses['loss_cls'].item() == pytest.approx(expected_cls, rel=1e-5)
    assert losses['loss_bbox'].item() == pytest.approx(expected_l1, rel=1e-5)
    assert losses['loss_iou'].item() == pytest.approx(expected_iou, rel=1e-5)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_iou'}


def test_aux_keys_and_layer_independence():
    criterion = PluginSetCriterion(num_classes=3)
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 5, 4)
    boxes = torch.rand(3, 2, 5, 4) * 0.5 + 0.25
    gt_labels = [torch.tensor([0, 2]), torch.tensor([1])]
    gt_boxes = [torch.rand(2, 4) * 0.5 + 0.25, torch.rand(1, 4) * 0.5 + 0.25]
    matches = [(torch.tensor([[0, 3]] * 3), torch.tensor([[1, 0]] * 3)),
               (torch.tensor([[4]] * 3), torch.tensor([[0]] * 3))]
    losses = criterion(logits, boxes, matches, gt_labels, gt_boxes, [(32, 32), (40, 20)])
    assert list(losses) == ['loss_cls', 'loss_bbox', 'loss_iou',
                            'd0.loss_cls', 'd0.loss_bbox', 'd0.loss_iou',
                            'd1.loss_cls', 'd1.loss_bbox', 'd1.loss_iou']
    # layer 0 alone gives d0's values
    single = PluginSetCriterion(num_classes=3, aux_loss=False)
    alone = single(logits[:1], boxes[:1], [(q[:1], g[:1]) for q, g in matches], gt_labels,
                   gt_boxes, [(32, 32), (40, 20)])
    for name in ('loss_cls', 'loss_bbox', 'loss_iou'):
        assert torch.allclose(alone[name], losses[f'd0.{name}'])
    # cross-entropy by the textbook formula
    target = torch.full((2, 5), 3)
    target[0, 0], target[0, 3], target[1, 4] = 2, 0, 1
    weight = torch.tensor([1., 1., 1., 0.1])
    ref = F.cross_entropy(logits[-1].reshape(-1, 4), target.flatten(), weight=weight)
    assert torch.allclose(losses['loss_cls'], ref)


def test_no_boxes_gives_zero_box_losses_with_gradient():
    criterion = PluginSetCriterion(num_classes=2)
    logits = torch.randn(2, 1, 4, 3, requires_grad=True)
    boxes = torch.rand(2, 1, 4, 4, requires_grad=True)
    matches = [(torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0, dtype=torch.long))]
    losses = criterion(logits, boxes, matches, [torch.zeros(0, dtype=torch.long)],
                       [torch.zeros(0, 4)], [(10, 10)])
    assert losses['loss_bbox'].item() == 0 and losses['loss_iou'].item() == 0
    # every query is "no object" (weight 0.1); the weight sum 0.4 is raised to 1
    # (as mmdet does), so the loss is 0.4 x the plain mean here
    ce = F.cross_entropy(logits[-1, 0], torch.full((4, ), 2), reduction='none')
    assert torch.allclose(losses['loss_cls'], (0.1 * ce).sum() / 1.0)
    sum(losses.values()).backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(boxes.grad).all()

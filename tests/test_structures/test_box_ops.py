import pytest
import torch

from mmdet_detr_plugin.structures.box_ops import (aligned_generalized_box_iou,
                                                  box_cxcywh_to_xyxy, box_xyxy_to_cxcywh,
                                                  generalized_box_iou)


def test_round_trip():
    boxes = torch.rand(50, 4)
    assert torch.allclose(box_xyxy_to_cxcywh(box_cxcywh_to_xyxy(boxes)), boxes, atol=1e-6)


def test_conversion_values():
    assert box_cxcywh_to_xyxy(torch.tensor([0.5, 0.5, 0.2, 0.4])).tolist() == \
        pytest.approx([0.4, 0.3, 0.6, 0.7])
    assert box_xyxy_to_cxcywh(torch.tensor([[10., 20., 30., 60.]])).tolist() == \
        [[20., 40., 20., 40.]]


def test_giou_hand_computed():
    a = torch.tensor([[0., 0., 2., 2.]])
    b = torch.tensor([[1., 1., 3., 3.], [4., 0., 5., 1.], [0., 0., 2., 2.]])
    # overlap 1, union 7, enclosure 9: 1/7 - 2/9; disjoint: 0 - (10 - 5)/10; identical: 1
    expected = torch.tensor([[1 / 7 - 2 / 9, -0.5, 1.0]])
    assert torch.allclose(generalized_box_iou(a, b, eps=0.), expected, atol=1e-6)


def test_giou_matches_torchvision_and_batched():
    torchvision = pytest.importorskip('torchvision')
    gen = torch.Generator().manual_seed(0)
    a = box_cxcywh_to_xyxy(torch.rand(3, 7, 4, generator=gen) * 0.5 + 0.25)
    b = box_cxcywh_to_xyxy(torch.rand(5, 4, generator=gen) * 0.5 + 0.25)
    ours = generalized_box_iou(a, b, eps=0.)  # [3, 7, 5]
    for i in range(3):
        ref = torchvision.ops.generalized_box_iou(a[i], b)
        assert torch.allclose(ours[i], ref, atol=1e-6)
    aligned = aligned_generalized_box_iou(a[0, :5], b, eps=0.)
    assert torch.allclose(aligned, torch.diagonal(ours[0, :5]), atol=1e-6)


def test_giou_degenerate_boxes_are_finite():
    zero = torch.tensor([[1., 1., 1., 1.]])
    inverted = torch.tensor([[3., 3., 1., 1.]])
    out = generalized_box_iou(torch.cat([zero, inverted]), torch.cat([zero, inverted]))
    assert torch.isfinite(out).all()

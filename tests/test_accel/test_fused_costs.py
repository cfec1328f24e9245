"""The fused CPU cost of DETR's matcher equals the eager costs bit for bit."""
import numpy as np
import pytest
import torch

from mmdet_detr_plugin.accel.fused_costs import FusedDetrCost, fused_weights
from mmdet_detr_plugin.models.task_modules import (PluginBBoxL1Cost, PluginClassificationCost,
                                                   PluginFocalLossCost, PluginHungarianAssigner,
                                                   PluginIoUCost)

pytest.importorskip('numba')


def fused_assigner(match_costs=None, min_elements=0):
    """An assigner with the fused cost kernel, from any size (the model's
    default starts at FUSED_MIN_ELEMENTS costs per image), so that small and
    odd shapes are compared too."""
    assigner = PluginHungarianAssigner(**(dict(match_costs=match_costs) if match_costs else {}))
    assigner.cost_kernel = FusedDetrCost(fused_weights(assigner.match_costs), min_elements)
    return assigner


def eager_cost(assigner, *args):
    """The same costs computed term by term (no cost kernel)."""
    eager = PluginHungarianAssigner(match_costs=assigner.match_costs)
    assert eager.cost_kernel is None
    return eager.batched_cost(*args)


def random_image(num_layers, num_queries, num_gts, seed, classes=80):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(num_layers, num_queries, classes + 1, generator=gen) * 3
    boxes = torch.rand(num_layers, num_queries, 4, generator=gen) * 0.6 + 0.1  # cxcywh
    gt_labels = torch.randint(0, classes, (num_gts, ), generator=gen)
    gt_boxes = torch.rand(num_gts, 4, generator=gen) * 0.5 + 0.2
    return logits, boxes, gt_labels, gt_boxes


@pytest.mark.parametrize('shape', [(6, 100, 10), (6, 300, 100), (2, 7, 30), (1, 1, 1),
                                   (3, 50, 1), (6, 33, 257)])
def test_fused_equals_eager_bitwise(shape):
    assigner = fused_assigner()
    assert assigner.cost_kernel.weights == (1., 5., 2., 1e-6)
    args = (*random_image(*shape, seed=sum(shape)), (480, 640))
    fused = assigner.batched_cost(*args)
    eager = eager_cost(assigner, *args)
    assert fused.shape == (shape[0], shape[2], shape[1]) and fused.dtype == torch.float32
    assert torch.equal(fused, eager)


def test_fused_equals_eager_on_degenerate_boxes_and_other_weights():
    """Zero-area and identical boxes (union and enclosure at eps), boxes
    outside the image, any weights and eps, fp16 inputs."""
    assigner = fused_assigner([
        dict(type='PluginClassificationCost', weight=2.5),
        dict(type='PluginBBoxL1Cost', weight=0.3),
        dict(type='PluginIoUCost', weight=7., eps=1e-3)])
    logits, boxes, gt_labels, gt_boxes = random_image(4, 20, 6, seed=1)
    boxes[:, :5, 2:] = 0  # zero width and height
    boxes[:, 5:8] = gt_boxes[0]  # exactly on a ground-truth box
    gt_boxes[1] = gt_boxes[0]  # duplicate ground truth
    gt_boxes[2, 2:] = 0
    boxes[:, 8:10, :2] = 1.5  # outside the image
    for dtype in (torch.float32, torch.float16):
        args = (logits.to(dtype), boxes.to(dtype), gt_labels, gt_boxes.to(dtype), (37, 53))
        fused = assigner.batched_cost(*args)
        assert torch.isfinite(fused).all()
        assert torch.equal(fused, eager_cost(assigner, *args))


def test_fused_cost_hand_computed():
    """One query, one box: -p + 5 L1 - 2 GIoU, worked out by hand."""
    assigner = fused_assigner()
    logits = torch.log(torch.tensor([[[0.25, 0.75]]]))  # p(class 1) = 0.75
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.5]]])  # pixels (on 100x100): 25..75
    gt_boxes = torch.tensor([[0.625, 0.5, 0.25, 0.5]])  # pixels: x 50..75, y 25..75
    # L1 = 0.125 + 0 + 0.25 + 0 = 0.375; IoU = 1250 / 2500, enclosure = union
    cost = assigner.batched_cost(logits, boxes, torch.tensor([1]), gt_boxes, (100, 100))
    assert cost.item() == pytest.approx(-0.75 + 5 * 0.375 - 2 * 0.5, abs=1e-6)


def test_only_detr_costs_in_default_order_are_fused():
    assert fused_weights(
        [PluginClassificationCost(1.), PluginBBoxL1Cost(5.), PluginIoUCost(2.)]) == \
        (1., 5., 2., 1e-6)
    # another order sums in another order: not bitwise the same, so eager
    assert fused_weights(
        [PluginClassificationCost(), PluginIoUCost(), PluginBBoxL1Cost()]) is None
    assert fused_weights(
        [PluginFocalLossCost(), PluginBBoxL1Cost(), PluginIoUCost()]) is None
    assert fused_weights(PluginHungarianAssigner(match_costs=[
        dict(type='ClassificationCost', weight=1.),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='IoUCost', iou_mode='giou', weight=2.0)]).match_costs) is None


def test_assign_batch_uses_the_fused_cost_from_its_size():
    """The batched matcher goes through the kernel for images of at least
    ``min_elements`` costs; smaller ones (DETR on COCO) keep the eager costs;
    the matches are the same either way."""
    class Counting(FusedDetrCost):
        calls = 0

        def __call__(self, *args):
            written = super().__call__(*args)
            Counting.calls += written
            return written

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 2, 40, 81, generator=gen)
    boxes = torch.rand(6, 2, 40, 4, generator=gen) * 0.5 + 0.2
    labels = [torch.randint(0, 80, (m, ), generator=gen) for m in (12, 3)]
    gt_boxes = [torch.rand(m, 4, generator=gen) * 0.4 + 0.3 for m in (12, 3)]
    args = (logits, boxes, labels, gt_boxes, [(64, 80), (80, 64)])
    assigner = PluginHungarianAssigner()
    eager = assigner.assign_batch(*args)
    assigner.cost_kernel = Counting((1., 5., 2., 1e-6), min_elements=6 * 40 * 12)
    got = assigner.assign_batch(*args)
    assert Counting.calls == 1  # the image with 12 boxes, not the one with 3
    for (q1, g1), (q2, g2) in zip(got, eager):
        assert torch.equal(q1, q2) and torch.equal(g1, g2)


def test_kernel_writes_into_a_view_of_a_larger_buffer():
    """``assign_batch`` passes views of one flat buffer as ``out``."""
    assigner = fused_assigner()
    args = (*random_image(3, 9, 4, seed=2), (20, 30))
    buffer = torch.full((1 + 3 * 4 * 9 + 1, ), 7.)
    out = buffer[1:-1].view(3, 4, 9)
    assigner.batched_cost(*args, out=out)
    assert buffer[0] == 7. and buffer[-1] == 7.
    assert torch.equal(out, eager_cost(assigner, *args))
    assert np.isfinite(out.numpy()).all()

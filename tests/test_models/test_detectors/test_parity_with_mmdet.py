"""The plugin's DETR is mmdet's DETR: same weights, same outputs, same losses.

Both models are built small, the plugin's weights are copied into mmdet's
through the converter, and a padded batch of two images of different sizes
goes through both (so padding masks and positional encodings are covered).
Every test runs with the plugin's default speed kernels and with none
(``accel='reference'``).
"""
import pytest
import torch
from mmengine.structures import InstanceData

from mmdet.registry import MODELS
from mmdet_detr_plugin.structures.box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh
from mmdet_detr_plugin.converters import mmdet_to_plugin, plugin_to_mmdet

from conftest import make_batch

ATOL = 1e-5


@pytest.fixture(params=['default', 'reference'])
def small_plugin_cfg(request, small_plugin_cfg):
    small_plugin_cfg['accel'] = request.param
    return small_plugin_cfg


def build_pair(plugin_cfg, mmdet_cfg):
    torch.manual_seed(0)
    plugin = MODELS.build(plugin_cfg)
    plugin.init_weights()
    mmdet = MODELS.build(mmdet_cfg)
    mmdet.load_state_dict(plugin_to_mmdet(plugin.state_dict()), strict=True)
    return plugin.eval(), mmdet.eval()


def test_converter_round_trip(small_plugin_cfg, small_mmdet_cfg):
    plugin, mmdet = build_pair(small_plugin_cfg, small_mmdet_cfg)
    back = mmdet_to_plugin(mmdet.state_dict())
    ours = plugin.state_dict()
    assert sorted(back) == sorted(ours)
    assert all(torch.equal(back[k], ours[k]) for k in ours)


def test_outputs_losses_and_assignments_equal_mmdet(small_plugin_cfg, small_mmdet_cfg):
    plugin, mmdet = build_pair(small_plugin_cfg, small_mmdet_cfg)
    inputs, samples = make_batch([(96, 128), (128, 80)], num_gts=[3, 5])

    with torch.no_grad():
        # 1. every decoder layer's logits and boxes
        cls_p, box_p = plugin._forward(inputs, samples)
        cls_m, box_m = mmdet._forward(inputs, samples)
        assert cls_p.shape == (3, 2, 10, 6) and box_p.shape == (3, 2, 10, 4)
        assert torch.allclose(cls_p, cls_m, atol=ATOL)
        assert torch.allclose(box_p, box_m, atol=ATOL)

        # 2. every loss term, same keys
        losses_p = plugin.loss(inputs, samples)
        losses_m = mmdet.loss(inputs, samples)
        assert list(losses_p) == list(losses_m)
        for key in losses_m:
            assert torch.allclose(losses_p[key], losses_m[key], atol=ATOL), key

        # 3. identical assignments for every layer and image
        head = plugin.bbox_head
        gt_labels = [s.gt_instances.labels for s in samples]
        shapes = [s.img_shape for s in samples]
        gt_boxes = []
        for s, (h, w) in zip(samples, shapes):
            scale = torch.tensor([w, h, w, h], dtype=torch.float32)
            gt_boxes.append(box_xyxy_to_cxcywh(s.gt_instances.bboxes / scale))
        matches = head.assigner.assign_batch(cls_p, box_p, gt_labels, gt_boxes, shapes)
        for b, ((h, w), sample) in enumerate(zip(shapes, samples)):
            scale = torch.tensor([w, h, w, h], dtype=torch.float32)
            for layer in range(cls_p.shape[0]):
                pred = InstanceData(scores=cls_m[layer, b],
                                    bboxes=box_cxcywh_to_xyxy(box_m[layer, b]) * scale)
                ref = mmdet.bbox_head.assigner.assign(pred, sample.gt_instances,
                                                      sample.metainfo).gt_inds
                got = torch.zeros_like(ref)
                got[matches[b][0][layer]] = matches[b][1][layer] + 1
                assert torch.equal(got, ref)

        # 4. predictions
        pred_p = plugin.predict(inputs, samples)
        pred_m = mmdet.predict(inputs, [s.clone() for s in samples])
        for a, b in zip(pred_p, pred_m):
            assert torch.allclose(a.pred_instances.scores, b.pred_instances.scores, atol=ATOL)
            assert torch.equal(a.pred_instances.labels, b.pred_instances.labels)
            assert torch.allclose(a.pred_instances.bboxes, b.pred_instances.bboxes, atol=1e-3)


def test_gradients_equal_mmdet(small_plugin_cfg, small_mmdet_cfg):
    """Training-time parity: the summed loss has the same gradient."""
    plugin, mmdet = build_pair(small_plugin_cfg, small_mmdet_cfg)
    inputs, samples = make_batch([(64, 64), (64, 48)], num_gts=[2, 4], seed=1)
    sum(plugin.loss(inputs, samples).values()).backward()
    sum(mmdet.loss(inputs, samples).values()).backward()
    grads_m = {k: p.grad for k, p in mmdet.named_parameters() if p.grad is not None}
    grads_p = mmdet_to_plugin(grads_m)
    for name, p in plugin.named_parameters():
        if p.grad is None:
            continue
        assert torch.allclose(p.grad, grads_p[name], atol=1e-5, rtol=1e-4), name

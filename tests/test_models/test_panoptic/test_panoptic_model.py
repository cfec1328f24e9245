"""DETR panoptic: attention maps, mask head, mask losses, merge, frozen stage."""
import math

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules

import mmdet_detr_plugin  # noqa: F401
from mmdet_detr_plugin.models.detectors.checkpoint_guard import CheckpointMismatchError
from mmdet_detr_plugin.models.layers.mask_head import PluginMaskHead, PluginMHAttentionMap
from mmdet_detr_plugin.structures.panoptic import box_mask_logits, merge_panoptic

register_all_modules()
D = 32


def small_model(**kwargs) -> torch.nn.Module:
    """A 2-stage ResNet-18 (strides 4, 8), d=32, 2+2 layers, 7 classes (4 things)."""
    cfg = dict(
        type='PluginDETRPanoptic', num_queries=6,
        data_preprocessor=dict(type='DetDataPreprocessor', pad_mask=True),
        backbone=dict(type='ResNet', depth=18, base_channels=16, num_stages=2,
                      strides=(1, 2), dilations=(1, 1), out_indices=(0, 1),
                      frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                      norm_eval=False),
        neck=dict(type='PluginInputProjection', in_channels=32, out_channels=D),
        encoder=dict(num_layers=2, embed_dims=D, num_heads=4, feedforward_channels=64,
                     dropout=0.0),
        decoder=dict(num_layers=2, embed_dims=D, num_heads=4, feedforward_channels=64,
                     dropout=0.0, return_intermediate=True),
        bbox_head=dict(type='PluginDETRPanopticHead', num_classes=7, num_things_classes=4,
                       embed_dims=D, attention_map=dict(num_heads=4),
                       mask_head=dict(in_channels=(16, ), norm_groups=4)),
        train_cfg=dict(assigner=dict(type='PluginHungarianAssigner')),
        test_cfg=dict(max_per_img=6, panoptic=dict(score_thr=0.0)))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def sample(h: int, w: int, pad=(64, 64)) -> DetDataSample:
    s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), batch_input_shape=pad,
                                    scale_factor=(1., 1.), pad_shape=pad))
    masks = np.zeros((3, h, w), np.uint8)
    masks[0, 4:20, 4:24] = 1
    masks[1, 30:50, 10:40] = 1
    masks[2] = 1 - masks[0] - masks[1]
    gt = InstanceData()
    gt.bboxes = torch.tensor([[4., 4, 24, 20], [10, 30, 40, 50], [0, 0, w, h]])
    gt.labels = torch.tensor([0, 2, 5])
    gt.masks = BitmapMasks(masks, h, w)
    s.gt_instances = gt
    return s


# --------------------------------------------------------------------------- attention maps
@pytest.mark.parametrize('normalize', ['joint', 'per_head'])
def test_attention_map_shapes_sums_and_values(normalize):
    torch.manual_seed(0)
    attn = PluginMHAttentionMap(embed_dims=16, num_heads=4, normalize=normalize)
    attn.init_weights()
    query, memory = torch.randn(2, 5, 16), torch.randn(2, 3 * 4, 16)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[1, 8:] = True  # the second image's last row is padding
    maps = attn(query, memory, mask, (3, 4))
    assert maps.shape == (2, 5, 4, 3, 4)
    sums = maps.flatten(2).sum(-1) if normalize == 'joint' else maps.flatten(3).sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums))
    assert maps[1, :, :, 2].abs().max() == 0  # no weight on padding
    # one head, one query, by hand: softmax(q.k / sqrt(4))
    q = attn.q_proj(query)[0, 2, 4:8]
    k = attn.k_proj(memory)[0, :, 4:8]
    logits = k @ q / 2.0
    if normalize == 'per_head':
        expected = logits.softmax(0)
    else:
        all_logits = (attn.k_proj(memory)[0].view(12, 4, 4)
                      * attn.q_proj(query)[0, 2].view(1, 4, 4)).sum(-1) / 2.0  # [S, H]
        expected = all_logits.T.flatten().softmax(0).view(4, 12)[1]
    torch.testing.assert_close(maps[0, 2, 1].flatten(), expected)


def test_attention_map_rescaled_uniform_is_one():
    """``rescale``: a map sums to its number of positions (uniform = 1)."""
    for normalize, total in (('per_head', 12.), ('joint', 48.)):
        attn = PluginMHAttentionMap(embed_dims=16, num_heads=4, normalize=normalize,
                                    rescale=True)
        plain = PluginMHAttentionMap(embed_dims=16, num_heads=4, normalize=normalize)
        plain.load_state_dict(attn.state_dict())
        query, memory = torch.randn(1, 2, 16), torch.randn(1, 12, 16)
        maps = attn(query, memory, None, (3, 4))
        sums = maps.flatten(2).sum(-1) if normalize == 'joint' else maps.flatten(3).sum(-1)
        torch.testing.assert_close(sums, torch.full_like(sums, total))
        torch.testing.assert_close(maps, plain(query, memory, None, (3, 4)) * total)


def test_attention_map_bad_options():
    with pytest.raises(ValueError, match='divisible by num_heads'):
        PluginMHAttentionMap(embed_dims=10, num_heads=4)
    with pytest.raises(ValueError, match="'joint' or 'per_head'"):
        PluginMHAttentionMap(normalize='heads')


# --------------------------------------------------------------------------- mask head
def test_mask_head_reference_widths_and_output_size():
    head = PluginMaskHead(embed_dims=256, num_heads=8, in_channels=(1024, 512, 256))
    assert [c.conv.out_channels for c in head.convs] == [264, 128, 64, 32, 16]
    assert [a.out_channels for a in head.adapters] == [128, 64, 32]
    # a small one: d=32, levels at 1/8, 1/4 of a 64 px input, memory at 1/16
    head = PluginMaskHead(embed_dims=32, num_heads=4, in_channels=(16, 8), norm_groups=4)
    head.init_weights()
    feat = torch.randn(2, 32, 4, 4)
    fpn = [torch.randn(2, 16, 8, 8), torch.randn(2, 8, 16, 16)]
    batch_inds = torch.tensor([0, 0, 1])
    out = head(feat, torch.rand(3, 4, 4, 4), fpn, batch_inds)
    assert out.shape == (3, 16, 16)
    with pytest.raises(ValueError, match='2 backbone levels given|1 backbone levels given'):
        head(feat, torch.rand(3, 4, 4, 4), fpn[:1], batch_inds)


def test_mask_head_per_query_equals_batched():
    torch.manual_seed(0)
    model = small_model().eval()
    x = torch.randn(2, 3, 64, 64)
    samples = [sample(64, 64), sample(48, 64)]
    with torch.no_grad():
        cls, boxes, masks = model._forward(x, samples)
        head_inputs = model.forward_transformer(model.extract_feat(x), samples)
        some = model.bbox_head.predict_masks(head_inputs['hidden_states'][-1],
                                             head_inputs['mask_inputs'],
                                             torch.tensor([1, 0]), torch.tensor([4, 2]))
    assert masks.shape == (2, 6, 16, 16)  # stride 4 of 64 px
    torch.testing.assert_close(some, masks[[1, 0], [4, 2]])


# --------------------------------------------------------------------------- losses
def test_mask_losses_against_hand_computation():
    head = small_model().bbox_head
    logits = torch.tensor([[0., 2.], [-1., 0.]])
    targets = torch.tensor([[1., 0.], [1., 1.]])
    # sigmoid focal loss, alpha 0.25, gamma 2: mean over pixels, summed over masks / 2 boxes
    p = torch.sigmoid(logits)
    focal = []
    for pi, ti in zip(p.flatten().tolist(), targets.flatten().tolist()):
        pt = pi if ti else 1 - pi
        alpha = 0.25 if ti else 0.75
        focal.append(-alpha * (1 - pt)**2 * math.log(pt))
    expected_focal = (sum(focal[:2]) / 2 + sum(focal[2:]) / 2) / 2
    got = head.loss_mask(logits, targets, avg_factor=2 * 2)
    assert float(got) == pytest.approx(expected_focal, rel=1e-5)
    # DICE: 1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1), summed over masks / 2 boxes
    dice = [1 - (2 * (pm * tm).sum() + 1) / (pm.sum() + tm.sum() + 1)
            for pm, tm in zip(p, targets)]
    assert float(head.loss_dice(logits, targets, avg_factor=2)) == pytest.approx(
        float(sum(dice) / 2), rel=1e-5)
    # a single pixel at logit 0, target 1: 0.25 * 0.5**2 * log 2
    assert float(head.loss_mask(torch.zeros(1, 1), torch.ones(1, 1), avg_factor=1)) == \
        pytest.approx(0.25 * 0.25 * math.log(2), rel=1e-5)


def test_training_losses_and_frozen_detector_gets_no_gradient():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    samples = [sample(64, 64), sample(48, 64)]
    model = small_model().train()
    losses = model.loss(x, samples)
    assert {'loss_cls', 'loss_bbox', 'loss_iou', 'loss_mask', 'loss_dice',
            'd0.loss_cls'} <= set(losses)
    frozen = small_model(freeze_detector=True).train()
    assert not frozen.backbone.training and not frozen.encoder.training
    assert frozen.bbox_head.mask_head.training
    losses = frozen.loss(x, samples)
    assert set(losses) == {'loss_mask', 'loss_dice'}
    sum(losses.values()).backward()
    for name, param in frozen.named_parameters():
        trainable = name.startswith(('bbox_head.attention_map.', 'bbox_head.mask_head.'))
        assert param.requires_grad == trainable, name
        assert (param.grad is not None) == trainable, name


def test_image_without_segments_keeps_the_graph():
    model = small_model(freeze_detector=True).train()
    s = sample(64, 64)
    s.gt_instances = s.gt_instances[:0]
    losses = model.loss(torch.randn(1, 3, 64, 64), [s])
    assert float(losses['loss_mask']) == 0 and float(losses['loss_dice']) == 0
    sum(losses.values()).backward()
    assert model.bbox_head.mask_head.out_conv.weight.grad is not None


def test_missing_gt_masks_is_a_clear_error():
    model = small_model().train()
    s = sample(64, 64)
    del s.gt_instances.masks
    s.set_metainfo(dict(img_path='data/x/000001.png'))
    with pytest.raises(ValueError, match='000001.png.*PluginLoadPanopticAnnotations'):
        model.loss(torch.randn(1, 3, 64, 64), [s])


def test_predict_outputs_what_mmdet_panoptic_metric_reads():
    torch.manual_seed(0)
    model = small_model().eval()
    samples = [sample(64, 64), sample(48, 64)]
    samples[1].set_metainfo(dict(ori_shape=(96, 128), scale_factor=(0.5, 0.5)))
    with torch.no_grad():
        out = model.predict(torch.randn(2, 3, 64, 64), samples)
    pan = out[1].pred_panoptic_seg.sem_seg
    assert pan.shape == (1, 96, 128) and pan.dtype == torch.int32
    labels = pan % 1000
    assert ((labels >= 0) & (labels <= 7)).all()  # 7 = VOID
    inst = out[1].pred_instances
    assert (inst.labels < 4).all() and inst.masks.shape[1:] == (96, 128)
    assert inst.masks.dtype == torch.bool and len(inst.masks) == len(inst.bboxes)


# --------------------------------------------------------------------------- merge
def test_merge_constructed_case():
    """Overlaps (the higher logit wins), two stuff queries of one class merged,
    a thing of 2 px removed and its pixels re-assigned."""
    base = torch.full((5, 8, 8), -10.)
    base[0, 0:4, 0:4] = 5  # q0 thing 0, score 0.9
    base[1, 2:6, 2:6] = 6  # q1 thing 0, score 0.8: wins the overlap rows 2-3, cols 2-3
    base[2] = 1            # q2 stuff 2, score 0.95: weakly everywhere,
    base[2, 6:8] = 4       # strongly on the bottom rows
    base[3, 0:6, 4:8] = 3  # q3 stuff 2, score 0.7: merged into q2
    base[4, 0:2, 7] = 9    # q4 thing 1, score 0.99: 2 px, removed
    scores = torch.tensor([0.9, 0.8, 0.95, 0.7, 0.99])
    labels = torch.tensor([0, 0, 2, 2, 1])
    pan, segments = merge_panoptic(scores, labels, base, num_things=2, num_classes=4,
                                   out_size=(8, 8), min_area=4)
    expected = torch.full((8, 8), 2, dtype=torch.int32)
    expected[0:4, 0:4] = 1000
    expected[2:6, 2:6] = 2000
    assert torch.equal(pan, expected)
    assert [(s['id'], s['area'], s['query']) for s in segments] == [
        (2, 36, 2), (1000, 12, 0), (2000, 16, 1)]


def test_merge_nothing_kept_is_void_and_resizes():
    pan, segments = merge_panoptic(torch.zeros(0), torch.zeros(0, dtype=torch.long),
                                   torch.zeros(0, 4, 4), 2, 4, (6, 5))
    assert segments == [] and pan.shape == (6, 5) and (pan == 4).all()
    # one stuff query over a 2x2 map, resized (nearest) to 4x4
    pan, _ = merge_panoptic(torch.ones(1), torch.tensor([3]), torch.zeros(1, 2, 2), 2, 4,
                            (4, 4))
    assert (pan == 3).all()


def test_box_baseline_smaller_box_in_front_void_outside():
    boxes = torch.tensor([[0., 0, 6, 8], [2, 2, 4, 4]])
    logits = box_mask_logits(boxes, (8, 8))
    pan, _ = merge_panoptic(torch.tensor([0.9, 0.8]), torch.tensor([3, 0]), logits, 2, 4,
                            (8, 8), min_area=0)
    expected = torch.full((8, 8), 3, dtype=torch.int32)
    expected[:, 6:] = 4  # VOID
    expected[2:4, 2:4] = 1000
    assert torch.equal(pan, expected)


# --------------------------------------------------------------------------- checkpoints
def test_box_checkpoint_loads_with_a_fresh_mask_head_partial_is_refused():
    panoptic = small_model()
    box_state = {k: v for k, v in panoptic.state_dict().items()
                 if not k.startswith(('bbox_head.attention_map.', 'bbox_head.mask_head.'))}
    box_state = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v
                 for k, v in box_state.items()}
    fresh = panoptic.bbox_head.mask_head.out_conv.weight.clone()
    panoptic.load_state_dict(box_state)
    assert torch.equal(panoptic.bbox_head.mask_head.out_conv.weight, fresh)
    assert (panoptic.bbox_head.fc_cls.weight == 0.5).all()
    partial = dict(box_state, **{'bbox_head.mask_head.out_conv.weight': fresh})
    with pytest.raises(CheckpointMismatchError, match='missing'):
        small_model().load_state_dict(partial)


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match='out_indices'):
        small_model(backbone=dict(type='ResNet', depth=18, base_channels=16, num_stages=2,
                                  strides=(1, 2), dilations=(1, 1), out_indices=(1, )))
    with pytest.raises(KeyError, match='model.test_cfg.panoptic'):
        small_model(test_cfg=dict(panoptic=dict(score_threshold=0.5)))
    with pytest.raises(ValueError, match='num_things_classes'):
        small_model(bbox_head=dict(type='PluginDETRPanopticHead', num_classes=7,
                                   num_things_classes=9, embed_dims=D))


def test_query_groups_each_group_gets_masks():
    """Joint training with 2 query groups: every group's matches get a mask, so the
    mask losses see 2x the segments (each normalised by its own count)."""
    torch.manual_seed(0)
    model = small_model(queries=dict(type='PluginDETRQueries', num_groups=2)).train()
    seen = {}
    original = model.bbox_head.mask_losses

    def spy(queries, mask_inputs, batch_inds, query_inds, gt_masks):
        seen.update(batch=batch_inds.tolist(), queries=query_inds.tolist(),
                    num=len(gt_masks), width=queries.shape[1])
        return original(queries, mask_inputs, batch_inds, query_inds, gt_masks)

    model.bbox_head.mask_losses = spy
    losses = model.loss(torch.randn(2, 3, 64, 64), [sample(64, 64), sample(48, 64)])
    assert {'loss_mask', 'loss_dice', 'loss_cls'} <= set(losses)
    assert seen['width'] == 12 and seen['num'] == 2 * 2 * 3  # 2 groups x 2 images x 3
    assert seen['batch'] == [0] * 6 + [1] * 6
    # group 1's queries are 6..11 of its image
    assert sorted(q >= 6 for q in seen['queries'][:6]) == [False] * 3 + [True] * 3


def test_panoptic_model_refuses_an_encoder_head():
    head = dict(type='FCOSHead', num_classes=7, in_channels=D, stacked_convs=1,
                feat_channels=D, strides=[8], norm_cfg=None)
    with pytest.raises(ValueError, match='model.encoder_head is not used by '
                                         'PluginDETRPanoptic'):
        small_model(encoder_head=head)

import itertools

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmdet.registry import TASK_UTILS
from mmdet_detr_plugin.models.task_modules import (PluginHungarianAssigner, ScipySolver,
                                                   solve_assignment)
from mmdet_detr_plugin.models.task_modules.assigners.solvers import host_buffer
from mmdet_detr_plugin.structures.box_ops import box_cxcywh_to_xyxy


def brute_force_min(cost: np.ndarray) -> float:
    """Minimum total cost over all one-to-one matchings of min(N, M) pairs."""
    n, m = cost.shape
    if n >= m:
        return min(sum(cost[rows[j], j] for j in range(m))
                   for rows in itertools.permutations(range(n), m))
    return min(sum(cost[i, cols[i]] for i in range(n))
               for cols in itertools.permutations(range(m), n))


@pytest.mark.parametrize('shape', [(5, 3), (4, 4), (3, 5), (6, 1), (1, 4)])
def test_solver_is_optimal_on_random_costs(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(10):
        cost = rng.normal(size=shape)
        rows, cols = solve_assignment(cost)
        assert len(rows) == min(shape)
        assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
        assert cost[rows, cols].sum() == pytest.approx(brute_force_min(cost))


def test_solver_hand_computed_3x4():
    cost = np.array([[4., 1., 3., 9.],
                     [2., 0., 5., 9.],
                     [3., 2., 2., 9.]])
    rows, cols = solve_assignment(cost)
    # 0->1 (1) + 1->0 (2) + 2->2 (2) = 5 is the unique optimum
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]


def test_solver_rejects_nan():
    with pytest.raises(ValueError, match='not finite'):
        solve_assignment(np.array([[np.nan, 1.], [0., 1.]]))


def _random_batch(num_layers=3, batch=3, queries=7, classes=5, gts=(2, 0, 4), seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(num_layers, batch, queries, classes + 1, generator=gen)
    boxes = torch.rand(num_layers, batch, queries, 4, generator=gen) * 0.5 + 0.2
    labels = [torch.randint(0, classes, (m, ), generator=gen) for m in gts]
    gt_boxes = [torch.rand(m, 4, generator=gen) * 0.5 + 0.2 for m in gts]
    shapes = [(60, 80), (48, 48), (100, 30)][:batch]
    return logits, boxes, labels, gt_boxes, shapes


def test_batched_equals_per_image_mmdet_contract():
    assigner = PluginHungarianAssigner()
    logits, boxes, labels, gt_boxes, shapes = _random_batch()
    matches = assigner.assign_batch(logits, boxes, labels, gt_boxes, shapes)
    for b, (h, w) in enumerate(shapes):
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        for layer in range(logits.shape[0]):
            pred = InstanceData(scores=logits[layer, b],
                                bboxes=box_cxcywh_to_xyxy(boxes[layer, b]) * scale)
            gt = InstanceData(labels=labels[b], bboxes=box_cxcywh_to_xyxy(gt_boxes[b]) * scale)
            result = assigner.assign(pred, gt, dict(img_shape=(h, w)))
            rows, cols = matches[b][0][layer], matches[b][1][layer]
            expected = torch.zeros(logits.shape[2], dtype=torch.long)
            expected[rows] = cols + 1
            assert torch.equal(result.gt_inds, expected)


def test_batched_equals_mmdet_hungarian_assigner():
    """Same costs as mmdet's own assigner with DETR's config -> same matches."""
    mmdet_assigner = TASK_UTILS.build(dict(
        type='HungarianAssigner',
        match_costs=[dict(type='ClassificationCost', weight=1.),
                     dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                     dict(type='IoUCost', iou_mode='giou', weight=2.0)]))
    ours = PluginHungarianAssigner()
    logits, boxes, labels, gt_boxes, shapes = _random_batch(seed=3, gts=(5, 1, 7))
    matches = ours.assign_batch(logits, boxes, labels, gt_boxes, shapes)
    for b, (h, w) in enumerate(shapes):
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        gt = InstanceData(labels=labels[b], bboxes=box_cxcywh_to_xyxy(gt_boxes[b]) * scale)
        for layer in range(logits.shape[0]):
            pred = InstanceData(scores=logits[layer, b],
                                bboxes=box_cxcywh_to_xyxy(boxes[layer, b]) * scale)
            ref = mmdet_assigner.assign(pred, gt, dict(img_shape=(h, w))).gt_inds
            got = torch.zeros_like(ref)
            got[matches[b][0][layer]] = matches[b][1][layer] + 1
            assert torch.equal(got, ref)


def test_mmdet_costs_inside_plugin_assigner():
    """mmdet's match-cost configs are accepted and give the same matches."""
    with_mmdet_costs = PluginHungarianAssigner(match_costs=[
        dict(type='ClassificationCost', weight=1.),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='IoUCost', iou_mode='giou', weight=2.0)])
    logits, boxes, labels, gt_boxes, shapes = _random_batch(seed=5)
    got = with_mmdet_costs.assign_batch(logits, boxes, labels, gt_boxes, shapes)
    ref = PluginHungarianAssigner().assign_batch(logits, boxes, labels, gt_boxes, shapes)
    for (q1, g1), (q2, g2) in zip(got, ref):
        assert torch.equal(q1, q2) and torch.equal(g1, g2)


def test_zero_boxes_and_more_boxes_than_queries():
    assigner = PluginHungarianAssigner()
    logits, boxes, labels, gt_boxes, shapes = _random_batch(queries=3, gts=(0, 5, 3))
    matches = assigner.assign_batch(logits, boxes, labels, gt_boxes, shapes)
    assert matches[0][0].shape == (3, 0)  # no boxes: nothing matched
    assert matches[1][0].shape == (3, 3)  # 5 boxes, 3 queries: every query matched
    assert all(row.unique().numel() == 3 for row in matches[1][1])  # 3 distinct boxes
    # per-image contract: all queries background with no boxes
    pred = InstanceData(scores=logits[0, 0], bboxes=torch.rand(3, 4))
    empty = InstanceData(labels=torch.zeros(0, dtype=torch.long), bboxes=torch.zeros(0, 4))
    assert assigner.assign(pred, empty, dict(img_shape=(10, 10))).gt_inds.tolist() == [0, 0, 0]


def test_ties_give_a_valid_optimal_matching():
    """Identical predictions: any one-to-one matching is optimal; it must
    still be one-to-one and consistent between the two entry points."""
    assigner = PluginHungarianAssigner()
    logits = torch.zeros(1, 1, 4, 3)
    boxes = torch.full((1, 1, 4, 4), 0.5)
    labels = [torch.tensor([0, 1])]
    gt_boxes = [torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]])]
    (rows, cols), = assigner.assign_batch(logits, boxes, labels, gt_boxes, [(10, 10)])
    assert rows.shape == (1, 2) and rows.unique().numel() == 2 and cols.unique().numel() == 2


def test_fp16_inputs_are_matched_in_fp32():
    assigner = PluginHungarianAssigner()
    logits, boxes, labels, gt_boxes, shapes = _random_batch(seed=7)
    ref = assigner.assign_batch(logits, boxes, labels, gt_boxes, shapes)
    half = assigner.assign_batch(logits.half(), boxes.half(), labels,
                                 [g.half() for g in gt_boxes], shapes)
    for (q1, _), (q2, _) in zip(ref, half):
        assert q1.shape == q2.shape


def problems_of(costs):
    """The flat buffer and shapes of the batch interface."""
    flat = np.concatenate([c.ravel() for c in costs]).astype(np.float32)
    return flat, [c.shape for c in costs]


def test_scipy_solver_on_threads_equals_serial():
    """The pool cuts the batch into runs; every problem must come back in
    order and solved exactly as on its own (ties and empty ones included)."""
    rng = np.random.default_rng(0)
    costs = [rng.random((m, n)).astype(np.float32)
             for m, n in [(3, 7), (0, 7), (7, 3), (1, 1), (40, 90), (5, 5), (2, 9)]]
    costs.append(np.zeros((4, 6), dtype=np.float32))  # all ties
    expected = [solve_assignment(c) for c in costs]
    expected_rows = np.concatenate([r for r, _ in expected])
    expected_cols = np.concatenate([c for _, c in expected])
    solver = ScipySolver(parallel_min_elements=0)  # the pool even for this small batch
    for threads in (1, 2, 3, 8, 20):
        rows, cols = solver.solve_batch(*problems_of(costs), threads)
        assert np.array_equal(rows, expected_rows) and np.array_equal(cols, expected_cols)


def test_assign_batch_same_matches_for_any_thread_count():
    args = _random_batch(num_layers=6, queries=30, gts=(9, 0, 40), seed=11)
    ref = PluginHungarianAssigner(num_threads=1).assign_batch(*args)
    for threads in (2, 3):
        assigner = PluginHungarianAssigner(num_threads=threads)
        assigner.solver = ScipySolver(parallel_min_elements=0)
        got = assigner.assign_batch(*args)
        for (q1, g1), (q2, g2) in zip(got, ref):
            assert torch.equal(q1, q2) and torch.equal(g1, g2)


def test_cost_buffer_is_reused_and_results_do_not_alias_it():
    assigner = PluginHungarianAssigner()
    small = _random_batch(num_layers=2, queries=9, gts=(3, 1, 2), seed=3)
    large = _random_batch(num_layers=6, queries=40, gts=(30, 5, 12), seed=4)
    first = assigner.assign_batch(*small)
    expected = [(q.clone(), g.clone()) for q, g in first]
    # a larger batch grows the buffer; later smaller ones reuse it
    large_ref = assigner.assign_batch(*large)
    grown = host_buffer(1)
    assert grown.untyped_storage().nbytes() >= 4 * 6 * 40 * (30 + 5 + 12)
    assert assigner.assign_batch(*small) is not None
    assert host_buffer(1).data_ptr() == grown.data_ptr()
    # the first call's matches are untouched by the calls that reused the buffer
    for (q, g), (q0, g0) in zip(first, expected):
        assert torch.equal(q, q0) and torch.equal(g, g0)
    # a buffer full of another batch's costs gives the matches of a fresh one
    host_buffer(10**5).fill_(float('nan'))
    for (q, g), (q0, g0) in zip(assigner.assign_batch(*large), large_ref):
        assert torch.equal(q, q0) and torch.equal(g, g0)


def test_assign_batch_rejects_nan_and_bad_thread_count():
    logits, boxes, labels, gt_boxes, shapes = _random_batch()
    boxes[1, 2, 3, 0] = float('nan')
    with pytest.raises(ValueError, match='not finite'):
        PluginHungarianAssigner().assign_batch(logits, boxes, labels, gt_boxes, shapes)
    with pytest.raises(ValueError, match='num_threads'):
        PluginHungarianAssigner(num_threads=0)


def test_bad_solver_and_missing_numba_name_the_key(monkeypatch):
    with pytest.raises(ValueError,
                       match="solver must be one of \\['numba', 'scipy'\\], got 'lapx'"):
        PluginHungarianAssigner(solver='lapx')
    monkeypatch.setitem(__import__('sys').modules, 'numba', None)  # as if not installed
    with pytest.raises(ImportError, match="solver='numba'.*pip install numba"):
        PluginHungarianAssigner(solver='numba')

"""The plugin's compiled assignment solver gives scipy's matches (optimal
ones where the optimum is tied), alone and behind the assigner."""
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmdet.registry import TASK_UTILS
from mmdet_detr_plugin.models.task_modules import PluginHungarianAssigner, solve_assignment

pytest.importorskip('numba')
from mmdet_detr_plugin.accel import lap_solver  # noqa: E402

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'test_models', 'test_task_modules'))
from test_hungarian_assigner import _random_batch, brute_force_min  # noqa: E402


@pytest.mark.parametrize('shape', [(10, 100), (100, 300), (300, 100), (1, 7), (7, 1), (40, 40),
                                   (500, 900), (900, 500)])
def test_equals_scipy_on_random_costs(shape):
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    for _ in range(3 if shape[0] * shape[1] > 10000 else 20):
        cost = (rng.random(shape) * 5 + rng.normal(size=(shape[0], 1))).astype(np.float32)
        rows, cols = solve_assignment(cost, solver='numba')
        ref_rows, ref_cols = solve_assignment(cost)
        assert np.array_equal(rows, ref_rows) and np.array_equal(cols, ref_cols)


def test_optimal_on_ties_and_small_problems():
    """Where the optimum is tied, another matching may be picked: it must be
    one-to-one, of min(R, C) pairs, and of the optimal total cost."""
    rng = np.random.default_rng(3)
    costs = [np.zeros((4, 6)), np.ones((3, 3)), rng.integers(0, 3, size=(5, 4)).astype(float),
             rng.integers(0, 2, size=(3, 6)).astype(float), np.array([[1., 1.], [1., 1.]])]
    costs += [rng.normal(size=shape) for shape in [(5, 3), (4, 4), (3, 5), (6, 1), (1, 4)]]
    costs += [rng.integers(0, 3, size=shape).astype(np.float32)
              for shape in [(4, 7), (6, 6), (7, 3), (2, 8)] for _ in range(5)]
    for cost in costs:
        rows, cols = solve_assignment(cost, solver='numba')
        assert len(rows) == min(cost.shape) and np.all(np.diff(rows) > 0)
        assert len(set(cols.tolist())) == len(cols)
        assert cost[rows, cols].sum() == pytest.approx(brute_force_min(cost))
    empty = solve_assignment(np.zeros((0, 5)), solver='numba')
    assert empty[0].shape == (0, ) and empty[1].shape == (0, )


def test_inputs_and_large_ties():
    """float64, transposed, strided and integer costs are solved as their
    float64 values; in a large all-tied problem every row takes the first free
    column of its minima, so no augmenting path is needed; non-finite costs
    are refused."""
    rng = np.random.default_rng(5)
    cost = rng.normal(size=(30, 50))
    for variant in (cost, np.asfortranarray(cost), np.repeat(cost, 2, axis=1)[:, ::2],
                    cost.T):
        got = lap_solver.solve(variant)
        ref = solve_assignment(np.ascontiguousarray(variant))
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    ints = rng.integers(0, 10, size=(6, 5))
    rows, cols = lap_solver.solve(ints)
    assert ints[rows, cols].sum() == brute_force_min(ints.astype(float))
    rows, cols = lap_solver.solve(np.zeros((600, 900), np.float32))
    assert rows.tolist() == list(range(600)) and cols.tolist() == list(range(600))
    with pytest.raises(ValueError, match='not finite'):
        lap_solver.solve(np.full((2, 3), np.inf))


def test_batch_interface_and_assigner_equal_scipy():
    args = _random_batch(num_layers=6, queries=30, gts=(9, 0, 40), seed=13)
    ref = PluginHungarianAssigner().assign_batch(*args)
    for threads in (1, 2):
        got = PluginHungarianAssigner(solver='numba', num_threads=threads).assign_batch(*args)
        for (q1, g1), (q2, g2) in zip(got, ref):
            assert torch.equal(q1, q2) and torch.equal(g1, g2)
    # and the per-image contract, from a config
    assigner = TASK_UTILS.build(dict(type='PluginHungarianAssigner', solver='numba'))
    pred = InstanceData(scores=torch.zeros(3, 3),
                        bboxes=torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.],
                                             [0., 20., 10., 30.]]))
    gt = InstanceData(labels=torch.tensor([0, 1]),
                      bboxes=torch.tensor([[21., 19., 30., 31.], [0., 0., 9., 11.]]))
    assert assigner.assign(pred, gt, dict(img_shape=(40, 40))).gt_inds.tolist() == [2, 1, 0]
    # NaN costs: the assigner's error
    logits, boxes, labels, gt_boxes, shapes = _random_batch()
    boxes[1, 2, 3, 0] = float('nan')
    with pytest.raises(ValueError, match='matching costs contain NaN or inf'):
        PluginHungarianAssigner(solver='numba').assign_batch(logits, boxes, labels, gt_boxes,
                                                             shapes)

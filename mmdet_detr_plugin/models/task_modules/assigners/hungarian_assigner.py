"""One-to-one matching of queries to ground-truth boxes (DETR paper, 3.1).

``PluginHungarianAssigner`` solves the linear sum assignment of a weighted
sum of match costs, with scipy's solver by default; with ``solver='numba'``
with the plugin's own shortest-augmenting-path solver (``lap_solver.py``,
compiled by numba; on DETR's dense cost matrices 5-6x faster than scipy and
1.3-1.7x faster than lapx, on one thread), or
with ``solver='lapx'`` with the Jonker-Volgenant solver of the ``lapx``
package (2-5x faster than scipy). numba and lapx are optional dependencies.
Two entry points:

* ``assign(pred_instances, gt_instances, img_meta) -> AssignResult``: mmdet's
  assigner contract, one image and one decoder layer, so the assigner drops
  into mmdet's ``DETRHead`` and its relatives;
* ``assign_batch(...)``: every decoder layer and every image of a batch at
  once. The cost matrices of each image are computed for all layers in one
  batched operation (in cache-sized chunks of layers when they are large),
  copied to the host in a single transfer for the whole batch, and the index
  results come back in a single transfer; this is what the plugin's head
  uses (mmdet's path costs one device round trip per layer and image).
  The (image, layer) problems are solved on a pool of host threads when
  they are large (scipy and lapx release the GIL; ``solver='numba'`` solves
  them all in one compiled call on numba's threads), so dense scenes use
  all the cores the process was given.

Costs are gt-major, [M, N] per layer: scipy's solver transposes an [N, M]
problem with N > M to exactly this orientation, so solving [M, N] directly
finds the same matching (ties included) as mmdet's assigner does. All
solvers are exact and work in float64: they return the same matching
whenever the optimum is unique (always, in practice, for real-valued
costs); among tied optima (duplicate boxes, identical predictions) numba's
and lapx's may pick another one of equal total cost.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mmdet.models.task_modules.assigners import AssignResult, BaseAssigner
from mmdet.registry import TASK_UTILS
from mmdet.utils import ConfigType
from ....structures.box_ops import box_cxcywh_to_xyxy
from . import lap_solver
from .fused_costs import detr_cost_cpu, fused_weights

# Default costs: DETR's weights (class 1, L1 5, GIoU 2).
DETR_MATCH_COSTS = (
    dict(type='PluginClassificationCost', weight=1.),
    dict(type='PluginBBoxL1Cost', weight=5.),
    dict(type='PluginIoUCost', weight=2.),
)


# Elements of one cost block computed at once; larger images are split by
# layer so that each elementwise pass stays in cache.
CHUNK_ELEMENTS = 1 << 19

# From this many cost elements in an image (L * M * N) DETR's costs are
# computed by the fused CPU kernel when numba is installed. Below it the eager
# costs take about a millisecond and numba (about 100 MiB of memory once
# imported) is not loaded: DETR on COCO (100 queries, tens of boxes) stays
# below it, dense scenes are above.
FUSED_MIN_ELEMENTS = 1 << 16

# Below this many cost elements in a batch the problems are solved on the
# calling thread: handing them to a pool costs more than it saves.
PARALLEL_MIN_ELEMENTS = 1 << 17


NONFINITE_COSTS = ('matching costs contain NaN or inf: the predictions of this step are '
                   'not finite (the model has diverged; lower the learning rate or check '
                   'the input data)')


def _check_finite(cost: np.ndarray) -> None:
    if not np.isfinite(cost).all():
        raise ValueError(NONFINITE_COSTS)


def _lapx_solver() -> Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    try:
        from lap import lapjvh
    except ImportError as err:
        raise ImportError(
            "PluginHungarianAssigner(solver='lapx') needs the lapx package (>= 0.11): "
            "pip install 'lapx>=0.11' (or mmdet-detr-plugin[fast]), or set the "
            "assigner's solver='scipy'") from err
    # rectangular costs solved natively (no padding to a square), in float64
    # as scipy's solver works
    return partial(lapjvh, extend_cost=True, return_cost=False, precision='float64')


def _numba_solver() -> Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    if not lap_solver.available():  # checked without compiling the solver
        raise ImportError(lap_solver.MISSING_NUMBA)
    return lap_solver.solve


# solver name -> factory of a function that takes an [R, C] float cost matrix
# and returns (rows, cols), rows ascending; lapx and numba are imported only
# when asked
SOLVERS: Dict[str, Callable[[], Callable]] = {
    'scipy': lambda: linear_sum_assignment,
    'numba': _numba_solver,
    'lapx': _lapx_solver,
}


def get_solver(name: str) -> Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """The solve function of ``SOLVERS[name]``; a clear error for a bad name."""
    if name not in SOLVERS:
        raise ValueError(f'PluginHungarianAssigner: solver must be one of {sorted(SOLVERS)}, '
                         f'got {name!r}')
    return SOLVERS[name]()


def solve_assignment(cost: np.ndarray, check: bool = True,
                     solver: str = 'scipy') -> Tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching of an [R, C] cost matrix.

    Returns ``(rows, cols)``, each of length ``min(R, C)``, rows ascending.
    Raises ``ValueError`` naming the problem when the costs are not finite
    (usually NaN predictions from a diverged model); ``check=False`` skips
    that test for costs already checked. ``solver``: a key of ``SOLVERS``.
    """
    return _solve(cost, get_solver(solver), check)


def _solve(cost: np.ndarray, solve: Callable, check: bool = False
           ) -> Tuple[np.ndarray, np.ndarray]:
    if cost.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    if check:
        _check_finite(cost)
    return solve(cost)


_POOLS: Dict[Tuple[int, int], ThreadPoolExecutor] = {}

# per thread: pinned or not -> flat float32 host tensor, grown on demand
_HOST_COSTS = threading.local()


def _host_costs(numel: int, pin: bool = False) -> Tensor:
    """A flat float32 CPU tensor of ``numel`` elements, reused across calls.

    The cost matrices of a dense batch are tens of MiB (6 x 500 x 900 x 4
    images: 43 MiB). A fresh CPU tensor of that size is new memory from the
    OS at every step, and first touching its pages cost 20-40 ms per step
    on a 2-core CPU, more than computing the costs (device memory needs no
    such care: torch's caching allocator already reuses it). The buffer is
    kept per thread and grows by a quarter more than asked, so that a batch
    with a few more boxes does not allocate again. ``pin``: page-locked, for
    the copy from a CUDA device.
    """
    buffers = _HOST_COSTS.__dict__.setdefault('buffers', {})
    buf = buffers.get(pin)
    if buf is None or buf.numel() < numel:
        buf = buffers[pin] = torch.empty(numel + numel // 4, dtype=torch.float32,
                                         pin_memory=pin)
    return buf[:numel]


def _pool(num_threads: int) -> ThreadPoolExecutor:
    """A pool per process (a forked child gets its own) and size."""
    key = (os.getpid(), num_threads)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(num_threads, thread_name_prefix='detr-matching')
    return _POOLS[key]


def _solve_serial(costs: Sequence[np.ndarray],
                  solve: Callable) -> List[Tuple[np.ndarray, np.ndarray]]:
    return [_solve(cost, solve) for cost in costs]


def solve_many(costs: Sequence[np.ndarray], num_threads: int = 1,
               solver: str = 'scipy') -> List[Tuple[np.ndarray, np.ndarray]]:
    """``solve_assignment`` of each cost matrix, in order.

    With ``num_threads > 1`` and enough work, the list is cut into
    ``num_threads`` runs of about equal size solved on a thread pool; each
    problem is solved exactly as on its own, so the results do not depend on
    the number of threads. The costs must already be finite.
    """
    solve = get_solver(solver)
    num_threads = min(num_threads, len(costs))
    if num_threads <= 1 or sum(cost.size for cost in costs) < PARALLEL_MIN_ELEMENTS:
        return _solve_serial(costs, solve)
    # contiguous runs balanced by size (scipy's time grows with R * C)
    sizes = np.cumsum([cost.size for cost in costs])
    cuts = np.searchsorted(sizes, sizes[-1] * np.arange(1, num_threads) / num_threads)
    bounds = [0, *cuts.tolist(), len(costs)]
    runs = [costs[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    # the calling thread solves the first run while the pool solves the rest
    futures = [_pool(num_threads - 1).submit(_solve_serial, run, solve) for run in runs[1:]]
    results = _solve_serial(runs[0], solve)
    for future in futures:
        results.extend(future.result())
    return results


@TASK_UTILS.register_module()
class PluginHungarianAssigner(BaseAssigner):
    """Hungarian assigner over a weighted sum of match costs.

    Args:
        match_costs (list[dict] | dict): match-cost configs; the plugin's
            (``PluginClassificationCost``, ``PluginBBoxL1Cost``,
            ``PluginIoUCost``) or any of mmdet's (``ClassificationCost``,
            ``BBoxL1Cost``, ``IoUCost``, ``FocalLossCost``...). Defaults to
            DETR's: class 1, L1 5, GIoU 2. mmdet's costs have no batched form
            and are evaluated per layer and image in ``assign_batch``.
        num_threads (int, optional): host threads that solve the problems of
            ``assign_batch`` when they are large (dense scenes). Defaults to
            ``torch.get_num_threads()`` at each call, the threads the process
            was given (1 per process under ``torchrun`` unless
            ``OMP_NUM_THREADS`` says otherwise). The matches do not depend on
            it.
        solver (str): ``'scipy'`` (default: scipy's
            ``linear_sum_assignment``, the solver of mmdet's assigner),
            ``'numba'`` (the plugin's shortest-augmenting-path solver from a
            greedy start, ``lap_solver.py``, compiled by the optional numba
            package; 5-6x faster than scipy on DETR's dense costs; in
            ``assign_batch`` all problems go to one compiled parallel call) or
            ``'lapx'`` (Jonker-Volgenant, ``lap.lapjvh`` of the optional
            ``lapx`` package; 2-5x faster than scipy). All give the same
            matches unless the optimum is tied.

    Example:
        >>> assigner = PluginHungarianAssigner()
        >>> pred = InstanceData(scores=torch.zeros(3, 3),
        ...                     bboxes=torch.tensor([[0., 0., 10., 10.],
        ...                                          [20., 20., 30., 30.],
        ...                                          [0., 20., 10., 30.]]))
        >>> gt = InstanceData(labels=torch.tensor([0, 1]),
        ...                   bboxes=torch.tensor([[21., 19., 30., 31.],
        ...                                        [0., 0., 9., 11.]]))
        >>> assigner.assign(pred, gt, dict(img_shape=(40, 40))).gt_inds
        tensor([2, 1, 0])
    """

    def __init__(self, match_costs: Union[List[ConfigType], ConfigType] = DETR_MATCH_COSTS,
                 num_threads: Optional[int] = None, solver: str = 'scipy') -> None:
        if isinstance(match_costs, dict):
            match_costs = [match_costs]
        if not match_costs:
            raise ValueError('PluginHungarianAssigner needs at least one match cost')
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f'PluginHungarianAssigner: num_threads must be a positive int '
                             f'or None, got {num_threads!r}')
        get_solver(solver)  # fail at build time, naming the key
        self.num_threads = num_threads
        self.solver = solver
        self.match_costs = [
            TASK_UTILS.build(cfg) if isinstance(cfg, dict) else cfg for cfg in match_costs
        ]
        self._all_batched = all(hasattr(cost, 'batched') for cost in self.match_costs)
        # DETR's three costs: one fused pass per element on the CPU (numba)
        self._fused_weights = fused_weights(self.match_costs)

    # ------------------------------------------------------------------ #
    # mmdet's contract: one image, one layer
    # ------------------------------------------------------------------ #
    def assign(self, pred_instances: InstanceData, gt_instances: InstanceData,
               img_meta: dict = None, **kwargs) -> AssignResult:
        """Match one image's predictions to its ground truth.

        Args:
            pred_instances (InstanceData): ``scores`` [N, C] logits and
                ``bboxes`` [N, 4] xyxy in pixels of ``img_meta['img_shape']``.
            gt_instances (InstanceData): ``labels`` [M] and ``bboxes`` [M, 4]
                xyxy in pixels.
            img_meta (dict): must hold ``img_shape`` (h, w) for box costs.

        Returns:
            AssignResult: ``gt_inds`` [N]: 0 for unmatched queries, i + 1 for
            a query matched to box i; ``labels`` [N]: the matched box's label
            or -1.
        """
        num_gts, num_preds = len(gt_instances), len(pred_instances)
        device = gt_instances.labels.device
        gt_inds = torch.zeros(num_preds, dtype=torch.long, device=device)
        labels = torch.full((num_preds, ), -1, dtype=torch.long, device=device)
        if num_gts and num_preds:
            cost = sum(c(pred_instances=pred_instances, gt_instances=gt_instances,
                         img_meta=img_meta) for c in self.match_costs)  # [N, M]
            rows, cols = solve_assignment(cost.detach().float().cpu().numpy(),
                                          solver=self.solver)
            rows = torch.from_numpy(rows).to(device)
            cols = torch.from_numpy(cols).to(device)
            gt_inds[rows] = cols + 1
            labels[rows] = gt_instances.labels[cols]
        return AssignResult(num_gts=num_gts, gt_inds=gt_inds, max_overlaps=None, labels=labels)

    # ------------------------------------------------------------------ #
    # batched: all layers, all images
    # ------------------------------------------------------------------ #
    def batched_cost(self, logits: Tensor, boxes: Tensor, gt_labels: Tensor, gt_boxes: Tensor,
                     img_shape: Sequence[int], out: Optional[Tensor] = None) -> Tensor:
        """Total cost of one image for all layers.

        Args:
            logits (Tensor): [L, N, C + 1] class logits.
            boxes (Tensor): [L, N, 4] normalised cxcywh.
            gt_labels (Tensor): [M] labels.
            gt_boxes (Tensor): [M, 4] normalised cxcywh.
            img_shape (tuple): (h, w) of the image in pixels.
            out (Tensor, optional): [L, M, N] float32 to write the costs into
                (a view of the batch's buffer: no concatenation afterwards).

        Returns:
            Tensor: [L, M, N] float32 (gt-major); ``out`` when given.
        """
        num_layers, num_queries = logits.shape[:2]
        if out is None:
            out = logits.new_empty(num_layers, len(gt_labels), num_queries, dtype=torch.float32)
        if (self._fused_weights is not None and out.device.type == 'cpu' and out.is_contiguous()
                and out.numel() >= FUSED_MIN_ELEMENTS and not torch.jit.is_tracing()
                and detr_cost_cpu(logits, boxes, gt_labels, gt_boxes, img_shape,
                                  self._fused_weights, out)):
            return out
        if self._all_batched:
            # layer chunks of about CHUNK_ELEMENTS costs: each term of a chunk
            # is summed into ``out`` while it is still in cache
            step = max(1, CHUNK_ELEMENTS // max(1, num_queries * len(gt_labels)))
            for start in range(0, num_layers, step):
                part = slice(start, start + step)
                target = out[part]
                for i, cost in enumerate(self.match_costs):
                    term = cost.batched(logits[part], boxes[part], gt_labels, gt_boxes, img_shape)
                    if i == 0:
                        target.copy_(term)
                    else:
                        target.add_(term)
            return out
        # mmdet's costs: one (layer) at a time through their own contract
        scale = boxes.new_tensor([img_shape[1], img_shape[0]] * 2)
        gt = InstanceData(labels=gt_labels, bboxes=box_cxcywh_to_xyxy(gt_boxes) * scale)
        meta = dict(img_shape=tuple(img_shape[:2]))
        layers = []
        for layer_logits, layer_boxes in zip(logits, boxes):
            pred = InstanceData(scores=layer_logits, bboxes=box_cxcywh_to_xyxy(layer_boxes) * scale)
            layers.append(sum(c(pred_instances=pred, gt_instances=gt, img_meta=meta).float()
                              for c in self.match_costs).t())
        return torch.stack(layers, out=out)

    @torch.no_grad()
    def assign_batch(self, logits: Tensor, boxes: Tensor, gt_labels: Sequence[Tensor],
                     gt_boxes: Sequence[Tensor],
                     img_shapes: Sequence[Sequence[int]]) -> List[Tuple[Tensor, Tensor]]:
        """Match every decoder layer's predictions of every image.

        Args:
            logits (Tensor): [L, B, N, C + 1] class logits.
            boxes (Tensor): [L, B, N, 4] normalised cxcywh.
            gt_labels (list[Tensor]): B tensors [M_b].
            gt_boxes (list[Tensor]): B tensors [M_b, 4], normalised cxcywh.
            img_shapes (list[tuple]): B (h, w).

        Returns:
            list[tuple[Tensor, Tensor]]: per image, ``(query_inds, gt_inds)``,
            each [L, K_b] long on the predictions' device, K_b = min(N, M_b),
            matched pairs in scipy's order.
        """
        num_layers, batch_size, num_queries = logits.shape[:3]
        logits, boxes = logits.detach().float(), boxes.detach().float()
        # 1. cost matrices, [L, M_b, N] per image, written into one flat buffer
        shapes = [len(labels) if num_queries else 0 for labels in gt_labels]
        total = num_layers * num_queries * sum(shapes)
        host = _host_costs(total, pin=logits.device.type == 'cuda')
        buffer = host if logits.device.type == 'cpu' else logits.new_empty(total)
        offset = 0
        for b, num_gts in enumerate(shapes):
            if num_gts:
                size = num_layers * num_gts * num_queries
                self.batched_cost(logits[:, b], boxes[:, b], gt_labels[b], gt_boxes[b],
                                  img_shapes[b],
                                  out=buffer[offset:offset + size].view(num_layers, num_gts,
                                                                        num_queries))
                offset += size
        # 2. one device -> host copy for the whole batch
        if buffer is not host:
            host.copy_(buffer)
        host = host.numpy()
        # 3. solve each (image, layer) on the host; 4. one host -> device copy
        # of all indices
        threads = self.num_threads or torch.get_num_threads()
        if self.solver == 'numba':
            # all problems in one compiled call, which also checks the costs
            try:
                rows, cols = lap_solver.solve_blocks(
                    host, [(num_gts, num_queries) for num_gts in shapes if num_gts
                           for _ in range(num_layers)], threads)
            except ValueError as err:
                raise ValueError(NONFINITE_COSTS) from err
            flat = torch.from_numpy(np.concatenate([cols, rows]))  # queries, then gts
        else:
            _check_finite(host)
            problems, offset = [], 0
            for num_gts in shapes:
                if not num_gts:  # no boxes, or no queries
                    continue
                block = host[offset:offset + num_layers * num_queries * num_gts]
                problems.extend(block.reshape(num_layers, num_gts, num_queries))
                offset += block.size
            solved = solve_many(problems, threads, self.solver)
            flat = torch.from_numpy(np.concatenate([queries for _, queries in solved] +
                                                   [gts for gts, _ in solved]).astype(np.int64)) \
                if solved else torch.empty(0, dtype=torch.long)
        device = logits.device
        flat = flat.to(device, non_blocking=True)
        half = flat.numel() // 2
        flat_rows, flat_cols = flat[:half], flat[half:]
        results, start = [], 0
        for num_gts in shapes:
            k = min(num_queries, num_gts)
            size = num_layers * k
            results.append((flat_rows[start:start + size].view(num_layers, k),
                            flat_cols[start:start + size].view(num_layers, k)))
            start += size
        return results

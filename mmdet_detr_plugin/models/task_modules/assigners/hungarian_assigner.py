"""One-to-one matching of queries to ground-truth boxes (DETR paper, 3.1).

``PluginHungarianAssigner`` solves the linear sum assignment of a weighted
sum of match costs (``match_costs.py``) with a solver (``solvers.py``:
scipy's by default). Two entry points:

* ``assign(pred_instances, gt_instances, img_meta) -> AssignResult``: mmdet's
  assigner contract, one image and one decoder layer, so the assigner drops
  into mmdet's ``DETRHead`` and its relatives;
* ``assign_batch(...)``: every decoder layer and every image of a batch at
  once, what the plugin's head uses. The cost matrices of each image are
  computed for all layers in one batched operation (in cache-sized chunks of
  layers when they are large) into one buffer for the batch, copied to the
  host in a single transfer, solved, and the indices come back in a single
  transfer (mmdet's path costs one device round trip per layer and image).

Costs are gt-major, [M, N] per layer: scipy's solver transposes an [N, M]
problem with N > M to exactly this orientation, so solving [M, N] directly
finds the same matching (ties included) as mmdet's assigner does.
"""
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.models.task_modules.assigners import AssignResult, BaseAssigner
from mmdet.registry import TASK_UTILS
from mmdet.utils import ConfigType
from ....structures.box_ops import box_cxcywh_to_xyxy, image_scale
from .solvers import get_solver, host_buffer

# Default costs: DETR's weights (class 1, L1 5, GIoU 2).
DETR_MATCH_COSTS = (
    dict(type='PluginClassificationCost', weight=1.),
    dict(type='PluginBBoxL1Cost', weight=5.),
    dict(type='PluginIoUCost', weight=2.),
)

# Elements of one cost block computed at once; larger images are split by
# layer so that each elementwise pass stays in cache.
CHUNK_ELEMENTS = 1 << 19

# ``cost_kernel(logits, boxes, gt_labels, gt_boxes, img_shape, out) -> bool``:
# writes one image's total cost into ``out`` and returns True, or returns
# False (``out`` untouched) for the batched costs to compute it
CostKernel = Callable[[Tensor, Tensor, Tensor, Tensor, Sequence[int], Tensor], bool]


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
        solver (str): ``'scipy'`` (default: scipy's ``linear_sum_assignment``,
            the solver of mmdet's assigner) or ``'numba'`` (the plugin's
            compiled solver, ``mmdet_detr_plugin/accel/lap_solver.py``,
            5-6x faster on DETR's dense costs; needs numba). Both give the
            same matches unless the optimum is tied. Inside ``PluginDETR``
            the detector's ``model.accel`` chooses it (``solver``).

    Attributes:
        solver: the solver object (``solvers.py``'s batch interface).
        cost_kernel (callable, optional): a faster computation of the total
            cost of one image (see ``CostKernel``), set by
            ``mmdet_detr_plugin.accel``; None (the default) computes the
            costs term by term.

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
        self.num_threads = num_threads
        self.solver = get_solver(solver)  # fails at build time, naming the key
        self.match_costs = [
            TASK_UTILS.build(cfg) if isinstance(cfg, dict) else cfg for cfg in match_costs
        ]
        self._all_batched = all(hasattr(cost, 'batched') for cost in self.match_costs)
        self.cost_kernel: Optional[CostKernel] = None

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
            rows, cols = self.solver.solve(cost.detach().float().cpu().numpy())
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
        if self.cost_kernel is not None and self.cost_kernel(logits, boxes, gt_labels,
                                                             gt_boxes, img_shape, out):
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
        scale = image_scale(img_shape, boxes)
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
        host = host_buffer(total, pin=logits.device.type == 'cuda')
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
        # 3. solve each (image, layer) problem on the host
        problems = [(num_gts, num_queries) for num_gts in shapes if num_gts
                    for _ in range(num_layers)]
        gts, queries = self.solver.solve_batch(host.numpy(), problems,
                                               self.num_threads or torch.get_num_threads())
        # 4. one host -> device copy of all indices, split per image: [L, K_b]
        flat = torch.from_numpy(np.concatenate([queries, gts]))
        flat = flat.to(logits.device, non_blocking=True)
        half = flat.numel() // 2
        results, start = [], 0
        for num_gts in shapes:
            k = min(num_queries, num_gts)
            size = num_layers * k
            results.append((flat[start:start + size].view(num_layers, k),
                            flat[half + start:half + start + size].view(num_layers, k)))
            start += size
        return results

"""Where each object query predicts (DETR paper, figure 7).

Every query of a trained DETR specialises in some region and box shape.
``collect_query_boxes`` runs a detector over a data loader and gathers, for
every query, its predicted box in each image, normalised to [0, 1];
``plot_query_centres`` draws the box centres, one colour per query.
"""
from typing import Optional

import numpy as np
import torch
from torch import Tensor


@torch.no_grad()
def collect_query_boxes(model: torch.nn.Module, data_loader, max_images: Optional[int] = None
                        ) -> Tensor:
    """Predicted boxes of every query over a data set.

    Args:
        model: a ``PluginDETR`` (its head reports ``query_inds``).
        data_loader: mmengine data loader of the test split.
        max_images (int, optional): stop after this many images.

    Returns:
        Tensor: [num_queries, num_images, 4] normalised cxcywh boxes
        (in the original image), in query order.
    """
    head = model.bbox_head
    num_queries = model.num_queries
    old = dict(head.test_cfg)
    head.test_cfg['max_per_img'] = num_queries  # keep every query
    per_image = []
    try:
        model.eval()
        for data in data_loader:
            for sample in model.test_step(data):
                pred = sample.pred_instances
                h, w = sample.metainfo['ori_shape'][:2]
                boxes = pred.bboxes.float() / pred.bboxes.new_tensor([w, h, w, h])
                cxcywh = torch.stack(((boxes[:, 0] + boxes[:, 2]) / 2,
                                      (boxes[:, 1] + boxes[:, 3]) / 2,
                                      boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1)
                ordered = torch.empty(num_queries, 4)
                ordered[pred.query_inds.cpu()] = cxcywh.cpu()
                per_image.append(ordered)
                if max_images is not None and len(per_image) >= max_images:
                    return torch.stack(per_image, dim=1)
    finally:
        head.test_cfg.clear()
        head.test_cfg.update(old)
    return torch.stack(per_image, dim=1)


def plot_query_centres(boxes: Tensor, out_file: str, max_panels: int = 20) -> None:
    """All queries in one panel (one colour each), then one panel per query.

    Args:
        boxes (Tensor): [num_queries, num_images, 4] normalised cxcywh.
        out_file (str): PNG path.
        max_panels (int): queries drawn in their own panel. Defaults to 20.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    num_queries = boxes.shape[0]
    colours = plt.cm.hsv(np.linspace(0, 1, num_queries, endpoint=False))
    shown = min(num_queries, max_panels)
    cols = min(6, shown + 1)
    rows = int(np.ceil((shown + 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_xlim(0, 1)
        ax.set_ylim(1, 0)  # image coordinates: y grows downwards
        ax.set_aspect('equal')
        ax.set_xticks([])
        ax.set_yticks([])
    centres = boxes[..., :2].numpy()
    all_ax = axes.flat[0]
    for q in range(num_queries):
        all_ax.scatter(centres[q, :, 0], centres[q, :, 1], s=2, color=colours[q])
    all_ax.set_title(f'all {num_queries} queries', fontsize=8)
    for q in range(shown):
        ax = axes.flat[q + 1]
        ax.scatter(centres[q, :, 0], centres[q, :, 1], s=3, color=colours[q])
        ax.set_title(f'query {q}', fontsize=8)
    for ax in list(axes.flat)[shown + 1:]:
        ax.axis('off')
    fig.suptitle(f'predicted box centres per query over {boxes.shape[1]} images', fontsize=9)
    fig.tight_layout()
    fig.savefig(out_file, dpi=110)
    plt.close(fig)

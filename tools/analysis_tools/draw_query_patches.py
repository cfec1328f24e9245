"""UP-DETR's pretext task made visible: the random patches of an image and
the boxes the pre-trained decoder found for them.

    python tools/analysis_tools/draw_query_patches.py CONFIG CHECKPOINT --out-dir DIR
        [--num-images 6] [--seed 0] [--device cpu] [--cfg-options ...]

CONFIG is a pre-training config (``PluginUPDETR``); its training data set and
pipeline give the images and their patches (drawn with ``--seed``). For each
image: the patches (thumbnails, as the backbone saw them), their boxes
(dashed) and, in the same colour, the highest-scoring box among the queries
of each patch's group (solid), with its IoU. Writes ``DIR/<image>.png`` and
``DIR/summary.json`` (IoU of every patch, their mean, and the share found at
IoU >= 0.5).
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _openmp import passive_wait_policy  # noqa: E402

passive_wait_policy()  # before torch loads OpenMP (tools/_openmp.py)

import matplotlib  # noqa: E402

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def parse_args() -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--num-images', type=int, default=6)
    parser.add_argument('--seed', type=int, default=0, help='seed of the patches drawn')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, as tools/train.py')
    return parser.parse_args()


def found_boxes(pred, num_patches: int, num_queries: int) -> list:
    """Per patch, the highest-scoring predicted box of its query group (or None)."""
    per_patch = num_queries // num_patches
    best = [None] * num_patches
    for box, score, query in zip(pred.bboxes.tolist(), pred.scores.tolist(),
                                 pred.query_inds.tolist()):
        j = query // per_patch
        if best[j] is None or score > best[j][1]:
            best[j] = (box, score)
    return best


def box_iou(a, b) -> float:
    iw = max(0., min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0., min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.


def main() -> None:
    args = parse_args()
    import mmcv
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from mmengine.runner import load_checkpoint

    import mmdet_detr_plugin  # noqa: F401  (registers the plugin)
    from mmdet.registry import DATASETS, MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.model.get('type') != 'PluginUPDETR':
        sys.exit(f'{args.config}: model.type is {cfg.model.get("type")}, expected a '
                 'pre-training config (PluginUPDETR)')
    model = MODELS.build(cfg.model)  # no init_weights: every tensor comes from the checkpoint
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    model.to(args.device).eval()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    num_patches, num_queries = model.queries.num_patches, model.queries.num_queries
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    colours = plt.get_cmap('tab10')
    summary = dict(checkpoint=args.checkpoint, images=[])
    step = max(1, len(dataset) // args.num_images)
    for index in range(0, step * args.num_images, step)[:args.num_images]:
        data = dataset[index]
        batch = model.data_preprocessor(pseudo_collate([data]), False)
        with torch.no_grad():
            sample = model.predict(batch['inputs'], batch['data_samples'])[0]
        meta = sample.metainfo
        scale = np.tile(np.asarray(meta['scale_factor'], dtype=np.float64), 2)
        patch_boxes = (sample.gt_instances.bboxes.cpu().numpy() / scale).tolist()
        best = found_boxes(sample.pred_instances.cpu(), num_patches, num_queries)
        ious = [box_iou(p, b[0]) if b else 0. for p, b in zip(patch_boxes, best)]
        image = mmcv.imread(meta['img_path'], channel_order='rgb')
        patches = sample.query_patches.cpu().numpy().transpose(0, 2, 3, 1)[..., ::-1]
        fig = plt.figure(figsize=(2.2 * num_patches, 2.2 * num_patches / 2 + 2.2))
        grid = fig.add_gridspec(2, num_patches, height_ratios=[num_patches / 2, 1])
        ax = fig.add_subplot(grid[0, :])
        ax.imshow(image)
        for j, (p, b) in enumerate(zip(patch_boxes, best)):
            c = colours(j % 10)
            ax.add_patch(plt.Rectangle(p[:2], p[2] - p[0], p[3] - p[1], fill=False, ec=c,
                                       lw=1.5, ls='--'))
            if b:
                (x1, y1, x2, y2), score = b
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=c,
                                           lw=2))
                ax.text(x1, y1, f'{j}: IoU {ious[j]:.2f}', color='white', fontsize=7,
                        bbox=dict(facecolor=c, alpha=0.8, pad=1, lw=0))
        ax.set_title(f'{osp.basename(meta["img_path"])}: patches (dashed) and the boxes the '
                     f'decoder found for them (solid); mean IoU {np.mean(ious):.2f}',
                     fontsize=9)
        ax.axis('off')
        for j in range(num_patches):
            pax = fig.add_subplot(grid[1, j])
            pax.imshow(patches[j])
            pax.set_title(f'patch {j}', fontsize=8, color=colours(j % 10))
            pax.axis('off')
        name = osp.splitext(osp.basename(meta['img_path']))[0]
        fig.savefig(osp.join(args.out_dir, f'{name}.png'), dpi=100, bbox_inches='tight')
        plt.close(fig)
        summary['images'].append(dict(img_path=meta['img_path'], iou=ious))
    all_ious = [i for image in summary['images'] for i in image['iou']]
    summary.update(mean_iou=float(np.mean(all_ious)),
                   found_at_iou_0_5=float(np.mean([i >= 0.5 for i in all_ious])),
                   num_patches=len(all_ious))
    with open(osp.join(args.out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print(f'{len(summary["images"])} images, {len(all_ious)} patches: mean IoU '
          f'{summary["mean_iou"]:.3f}, found at IoU >= 0.5: {summary["found_at_iou_0_5"]:.1%}; '
          f'pictures in {args.out_dir}')


if __name__ == '__main__':
    main()

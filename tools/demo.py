"""Draw a detector's predictions, and optionally where each query looked.

    python tools/demo.py IMAGE_OR_DIR CONFIG CHECKPOINT --out-dir DIR
        [--score-thr 0.7] [--attention] [--max-images N] [--device cpu]
        [--backend pytorch|onnxruntime]

Writes ``DIR/<image>.png`` (kept boxes with class names and scores, drawn by
mmdet's ``DetLocalVisualizer``; for a panoptic model, ``PluginDETRPanoptic``,
its panoptic segmentation instead: one colour per segment, class names at
their centres) and, with ``--attention``,
``DIR/<image>_attention.png``: one panel per kept query with the last
decoder layer's head-averaged cross-attention over the image.

With ``--backend onnxruntime``, CHECKPOINT is a model exported by
``tools/deployment/pytorch2onnx.py``, run by ONNX Runtime through the
config's test pipeline (no ``--attention``: the graph returns boxes only).
"""
import argparse
import math
import os
import os.path as osp
import sys
from typing import List

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _openmp import passive_wait_policy  # noqa: E402

passive_wait_policy()  # before torch loads OpenMP (tools/_openmp.py)

import matplotlib  # noqa: E402

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import mmcv  # noqa: E402
import numpy as np  # noqa: E402

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw predictions (and attention maps)')
    parser.add_argument('inputs', help='an image file or a directory of images')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-dir', required=True, help='where the PNGs go')
    parser.add_argument('--score-thr', type=float, default=0.7,
                        help='keep boxes above this (a panoptic model keeps the queries of '
                        'its model.test_cfg.panoptic.score_thr)')
    parser.add_argument('--attention', action='store_true',
                        help='also draw each kept query\'s cross-attention map')
    parser.add_argument('--max-images', type=int, default=None, help='stop after N images')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch',
                        help='the PyTorch checkpoint, or an exported .onnx model in ONNX Runtime')
    return parser.parse_args()


def list_images(inputs: str) -> List[str]:
    if osp.isfile(inputs):
        return [inputs]
    if not osp.isdir(inputs):
        raise FileNotFoundError(f'no image or directory at {inputs}')
    files = sorted(osp.join(inputs, f) for f in os.listdir(inputs)
                   if f.lower().endswith(IMAGE_EXTS))
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTS)}) in {inputs}')
    return files


def draw_attention(image_rgb: np.ndarray, pred, maps, classes, score_thr: float,
                   out_file: str) -> int:
    """One panel per kept query: the image, its attention map and its box."""
    keep = (pred.scores >= score_thr).nonzero().flatten().tolist()
    if not keep:
        return 0
    cols = min(4, len(keep))
    rows = math.ceil(len(keep) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for ax, i in zip(axes.flat, keep):
        x1, y1, x2, y2 = pred.bboxes[i].tolist()
        ax.imshow(image_rgb)
        ax.imshow(maps[i].cpu().numpy(), cmap='jet', alpha=0.5, vmin=0, vmax=1)
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color='white',
                                   linewidth=1.5))
        name = classes[int(pred.labels[i])] if classes else str(int(pred.labels[i]))
        ax.set_title(f'query {int(pred.query_inds[i])}: {name} {float(pred.scores[i]):.2f}',
                     fontsize=9)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return len(keep)


def draw_panoptic(visualizer, stem: str, image_rgb: np.ndarray, result, num_classes: int,
                  out_file: str, path: str) -> str:
    """Draw ``result.pred_panoptic_seg`` alone (mmdet's panoptic drawing:
    segments coloured by class, names at their centres); returns a summary."""
    from mmdet.evaluation.functional import INSTANCE_OFFSET
    from mmdet.structures import DetDataSample
    panoptic = DetDataSample(metainfo=result.metainfo)
    panoptic.pred_panoptic_seg = result.pred_panoptic_seg
    visualizer.add_datasample(stem, image_rgb, panoptic, draw_gt=False, show=False,
                              out_file=out_file)
    ids = result.pred_panoptic_seg.sem_seg.unique().cpu()
    ids = ids[ids % INSTANCE_OFFSET != num_classes]  # VOID
    things = int((ids >= INSTANCE_OFFSET).sum())
    return f'{path}: {len(ids)} segments ({things} things, {len(ids) - things} stuff)'


def init_onnxruntime(args):
    """What mmdet's ``init_detector`` gives, with the config's model replaced
    by the exported graph in ONNX Runtime; class names from the config."""
    from mmengine.config import Config

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmdet_detr_plugin.deploy import onnxruntime_model_cfg
    if args.attention:
        raise ValueError('--attention needs the PyTorch model (--backend pytorch)')
    if not args.checkpoint.endswith('.onnx'):
        raise ValueError(f'--backend onnxruntime takes an exported .onnx model, got '
                         f'{args.checkpoint}')
    cfg = Config.fromfile(args.config)
    cfg.model = onnxruntime_model_cfg(cfg.model, args.checkpoint)
    register_all_modules()
    model = MODELS.build(cfg.model).eval()
    model.cfg = cfg  # inference_detector reads the test pipeline from it
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None:  # the class names stored at export
        classes = model.runner.metadata.get('classes')
    model.dataset_meta = dict(classes=tuple(classes)) if classes else {}
    return model


def main() -> None:
    args = parse_args()
    from mmdet.apis import inference_detector, init_detector
    from mmdet.visualization import DetLocalVisualizer

    images = list_images(args.inputs)[:args.max_images]
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    if args.backend == 'onnxruntime':
        model = init_onnxruntime(args)
    else:
        model = init_detector(args.config, args.checkpoint, device=args.device)
    classes = model.dataset_meta.get('classes') if model.dataset_meta else None
    visualizer = DetLocalVisualizer(name='detr_demo')
    visualizer.dataset_meta = model.dataset_meta
    os.makedirs(args.out_dir, exist_ok=True)
    if args.attention:
        if 'Panoptic' in type(model).__name__:
            raise ValueError('--attention draws box detectors\' cross-attention; '
                             f'{args.config} is a panoptic model (drop --attention)')
        from mmdet_detr_plugin.apis import predict_with_attention

    for path in images:
        stem = osp.splitext(osp.basename(path))[0]
        if args.attention:
            result, maps = predict_with_attention(model, path)
        else:
            result = inference_detector(model, path)
        image_rgb = mmcv.imread(path, channel_order='rgb')
        if 'pred_panoptic_seg' in result:
            print(draw_panoptic(visualizer, stem, image_rgb, result, len(classes or ()),
                                osp.join(args.out_dir, f'{stem}.png'), path))
            continue
        visualizer.add_datasample(stem, image_rgb, result, draw_gt=False, show=False,
                                  pred_score_thr=args.score_thr,
                                  out_file=osp.join(args.out_dir, f'{stem}.png'))
        kept = int((result.pred_instances.scores >= args.score_thr).sum())
        line = f'{path}: {kept} boxes'
        if args.attention:
            draw_attention(image_rgb, result.pred_instances, maps, classes, args.score_thr,
                           osp.join(args.out_dir, f'{stem}_attention.png'))
            line += ', attention maps drawn'
        print(line)
    print(f'pictures written to {args.out_dir}')


if __name__ == '__main__':
    main()

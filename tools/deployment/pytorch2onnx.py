"""Export a PluginDETR checkpoint to ONNX (torch's exporter, ``dynamo=True``).

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out model.onnx
        [--opset 18] [--dynamic] [--raw] [--shape H W] [--batch-size 2]
        [--no-verify] [--cfg-options k=v ...]

The graph takes ``images`` float32 [B, 3, H, W] (the test pipeline's resized
images, 0-255 in the loader's channel order, top-left in a common padded
size) and ``img_sizes`` int64 [B, 2] (each image's valid h, w), and returns
``boxes`` [B, k, 4] (xyxy, input pixels), ``scores`` [B, k], ``labels``
[B, k] after DETR's post-processing (``--raw``: ``cls_logits`` [B, N, K + 1]
and normalised cxcywh ``boxes`` [B, N, 4]). ``--dynamic`` makes batch size,
height and width dynamic; without it they are fixed to the traced sample's
(``--batch-size`` images of ``--shape``, default the test pipeline's Resize
scale). The model is built with ``model.accel='reference'`` (the plain
computation: ONNX Runtime fuses on its own). Unless ``--no-verify``, the
exported graph is run with ONNX Runtime on the sample and compared with
PyTorch. Needs ``onnx``, ``onnxscript`` (and ``onnxruntime`` to verify).
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _openmp import passive_wait_policy  # noqa: E402

passive_wait_policy()  # before torch loads OpenMP (tools/_openmp.py)

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a PluginDETR checkpoint to ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset (default 18)')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch size, height and width')
    parser.add_argument('--raw', action='store_true',
                        help='output logits and normalised boxes of every query instead')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), default=None,
                        help='traced input size (default: the test pipeline\'s Resize scale)')
    parser.add_argument('--batch-size', type=int, default=2,
                        help='traced batch size; images after the first are smaller, so '
                        'padding is traced (default 2)')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the ONNX Runtime vs PyTorch comparison')
    parser.add_argument('--json', default=None, help='write the comparison to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, as key=value pairs')
    return parser.parse_args(argv)


def test_resize(cfg) -> dict:
    """The test pipeline's Resize step (or {})."""
    pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', None)
    pipeline = pipeline or cfg.get('test_pipeline', [])
    for step in pipeline:
        if step.get('type', '').split('.')[-1] in ('Resize', 'FixShapeResize'):
            return dict(step)
    return {}


def traced_shape(resize: dict):
    """(h, w) of an image the test Resize gives: a keep-ratio scale's
    (long, short) edges as a landscape image, else the scale (w, h)."""
    scale = resize.get('scale')
    if scale is None:
        return 512, 512
    if isinstance(scale, int):
        return scale, scale
    long_edge, short_edge = max(scale), min(scale)
    if resize.get('keep_ratio', False):
        return short_edge, long_edge
    return int(scale[1]), int(scale[0])


def build_detector(cfg, checkpoint: str):
    """The config's model in eval mode, accel='reference', the checkpoint
    loaded strictly."""
    from mmengine.runner import load_checkpoint
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    model_cfg = cfg.model.copy()
    model_cfg['accel'] = 'reference'
    backbone = model_cfg.get('backbone', {})
    if isinstance(backbone.get('init_cfg'), dict):  # weights come from the checkpoint
        backbone['init_cfg'] = None
    model = MODELS.build(model_cfg)
    try:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                        revise_keys=[(r'^module\.', '')])
    except RuntimeError as e:
        raise RuntimeError(f'checkpoint {checkpoint} does not match the config\'s model: '
                           f'{e}') from None
    model.eval()
    return model


def class_names(cfg):
    for key in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        dataset = cfg.get(key, {}).get('dataset', {})
        classes = (dataset.get('metainfo') or {}).get('classes')
        if classes:
            return list(classes)
    return None


def main(argv=None) -> dict:
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} not found: {path}')
    import torch
    from train import load_config

    from mmdet_detr_plugin.deploy import PluginDETRExport, export_onnx, sample_inputs
    from mmdet_detr_plugin.deploy.export import require_exporter
    from mmdet_detr_plugin.deploy.onnxruntime import METADATA_KEY
    require_exporter()
    cfg = load_config(args.config, args.cfg_options)
    detector = build_detector(cfg, args.checkpoint)
    wrapper = PluginDETRExport(detector, raw=args.raw).eval()
    resize = test_resize(cfg)
    shape = tuple(args.shape) if args.shape else traced_shape(resize)
    images, img_sizes = sample_inputs(shape, args.batch_size)
    meta = dict(config=osp.basename(args.config), classes=class_names(cfg),
                resize=dict(scale=resize.get('scale'),
                            keep_ratio=bool(resize.get('keep_ratio', False))),
                pad_size_divisor=int(cfg.model.get('data_preprocessor', {}).get(
                    'pad_size_divisor', 1)),
                channel_order='bgr', raw=args.raw, dynamic=args.dynamic,
                max_per_img=wrapper.max_per_img)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    export_onnx(wrapper, args.out, images, img_sizes, opset=args.opset, dynamic=args.dynamic,
                metadata={METADATA_KEY: json.dumps(meta)})
    print(f'exported {args.config} ({args.checkpoint}) to {args.out} '
          f'(opset {args.opset}, {"dynamic" if args.dynamic else "static"} shapes, '
          f'traced on {args.batch_size} x {shape[0]}x{shape[1]})')
    report = dict(config=args.config, checkpoint=args.checkpoint, out=args.out,
                  opset=args.opset, dynamic=args.dynamic, raw=args.raw)
    if not args.no_verify:
        from mmdet_detr_plugin.deploy import ONNXRuntimeDETR
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper(images, img_sizes)]
        got = ONNXRuntimeDETR(args.out)(images.numpy(), img_sizes.numpy())
        diffs = {name: float(abs(got[name].astype('float64') - ref).max())
                 for name, ref in zip(wrapper.output_names, expected)}
        report['max_abs_diff'] = diffs
        print('ONNX Runtime vs PyTorch on the traced batch, max |diff|: ' +
              ', '.join(f'{k} {v:.3g}' for k, v in diffs.items()))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == '__main__':
    main()

"""The ONNX Runtime rows of ``benchmark_vs_mmdet.py``: inference of the
plugin's R50 exported to ONNX (``mmdet_detr_plugin.deploy``) against the
plugin's and mmdet's PyTorch inference, same weights, same images."""
import copy
import os.path as osp
import statistics
import tempfile
from typing import Dict, List, Optional, Sequence

import torch

import _benchmark_rows as rows


def why_not_run(device: str, skipped: bool) -> Optional[str]:
    """None when the rows can run, else the reason."""
    if skipped:
        return 'skipped (--skip onnxruntime)'
    if device != 'cpu':
        return 'CPU only (--device cpu)'
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        return f'not run: {e.name} is not installed'
    return None


def make_images(batch_size: int, height: int, width: int, seed: int = 0):
    """Raw 0-255 images [B, 3, H, W] of one size, their normalised batch for
    the PyTorch models and its data samples."""
    from mmdet.structures import DetDataSample
    gen = torch.Generator().manual_seed(seed)
    raw = torch.rand(batch_size, 3, height, width, generator=gen) * 255
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    inputs = (raw.flip(1) - mean) / std  # what DetDataPreprocessor gives (BGR -> RGB)
    samples = [DetDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width),
                                           batch_input_shape=(height, width),
                                           scale_factor=(1., 1.)))
               for _ in range(batch_size)]
    return raw, inputs, samples


def export(plugin, workdir: str) -> str:
    """The plugin model's weights in the reference computation, exported with
    dynamic batch and size; returns the .onnx path."""
    from mmdet.registry import MODELS

    from mmdet_detr_plugin.deploy import PluginDETRExport, export_onnx, sample_inputs
    cfg = rows.load_configs()[0].model
    cfg.accel = 'reference'
    cfg.backbone.depth = plugin.backbone.depth
    cfg.backbone.init_cfg = None
    if cfg.backbone.depth < 50:
        cfg.neck.in_channels = 512
    reference = MODELS.build(cfg)
    reference.load_state_dict(plugin.state_dict(), strict=True)
    wrapper = PluginDETRExport(reference.eval()).eval()
    path = osp.join(workdir, 'detr.onnx')
    images, sizes = sample_inputs((320, 512), 2)
    export_onnx(wrapper, path, images, sizes, dynamic=True)
    return path


def agreement(boxes, scores, pred) -> Dict[str, float]:
    """Max |diff| of the scores (both sorted) and of each ONNX Runtime box to
    its nearest PyTorch box (pixels): near-equal scores of random weights may
    rank queries differently in the two, which is not a disagreement."""
    boxes, scores = torch.from_numpy(boxes), torch.from_numpy(scores)
    score_diff = (scores.sort().values - pred.scores.sort().values).abs().max()
    box_diff = (boxes[:, None] - pred.bboxes[None]).abs().amax(-1).min(1).values.max()
    return dict(scores=float(score_diff), boxes=float(box_diff))


def onnxruntime_rows(args, plugin, reference) -> List[Dict]:
    """Inference at ``--onnx-size`` for each of ``--onnx-batches``: plugin
    (its ``--accel``), mmdet and ONNX Runtime in alternation."""
    from mmdet_detr_plugin.deploy import ONNXRuntimeDETR
    height, width = args.onnx_size
    out = []
    with tempfile.TemporaryDirectory() as workdir:
        session = ONNXRuntimeDETR(export(plugin, workdir), num_threads=torch.get_num_threads())
        for model in (plugin, reference):
            model.eval()
        for batch_size in args.onnx_batches:
            raw, inputs, samples = make_images(batch_size, height, width)
            sizes = torch.tensor([[height, width]] * batch_size).numpy()
            raw_np = raw.numpy()

            def torch_fn(model):
                def run():
                    with torch.no_grad():
                        return model.predict(inputs, copy.deepcopy(samples))
                return run
            fns = [torch_fn(plugin), torch_fn(reference), lambda: session(raw_np, sizes)]
            got, want = fns[2](), fns[0]()
            parity = [agreement(got['boxes'][b], got['scores'][b], want[b].pred_instances)
                      for b in range(batch_size)]
            parity = {k: max(p[k] for p in parity) for k in parity[0]}
            times = rows.timed_pair(fns, args.warmup, args.iters, 'cpu', not args.no_prime)
            entry = dict(batch=batch_size, size=[height, width], parity=parity)
            for name, t in zip(('plugin', 'mmdet', 'onnxruntime'), times):
                entry[f'{name}_ms'] = statistics.median(t) * 1e3
                entry[f'{name}_range_ms'] = [min(t) * 1e3, max(t) * 1e3]
            entry['vs_mmdet'] = entry['mmdet_ms'] / entry['onnxruntime_ms']
            entry['vs_plugin'] = entry['plugin_ms'] / entry['onnxruntime_ms']
            out.append(entry)
    return out


def print_rows(entries: Sequence[Dict], why_not: Optional[str], fmt) -> None:
    if why_not:
        print(f'\nONNX Runtime rows: {why_not}')
        return
    print('\nInference on the CPU, ONNX Runtime (the plugin exported, same weights) against '
          'PyTorch; speed-up = PyTorch time / ONNX Runtime time\n')
    print(f'| {"row":38} | {"plugin PyTorch":>22} | {"mmdet PyTorch":>22} | '
          f'{"ONNX Runtime":>22} | {"vs mmdet":>8} | {"vs plugin":>9} |')
    print(f'|{"-" * 40}|{"-" * 24}|{"-" * 24}|{"-" * 24}|{"-" * 10}|{"-" * 11}|')
    for e in entries:
        name = f'inference, batch {e["batch"]}, {e["size"][0]}x{e["size"][1]}'
        print(f'| {name:38} | {fmt(e["plugin_ms"], e["plugin_range_ms"]):>22} | '
              f'{fmt(e["mmdet_ms"], e["mmdet_range_ms"]):>22} | '
              f'{fmt(e["onnxruntime_ms"], e["onnxruntime_range_ms"]):>22} | '
              f'{e["vs_mmdet"]:7.2f}x | {e["vs_plugin"]:8.2f}x |')
    worst = max(max(e['parity'].values()) for e in entries)
    print(f'ONNX Runtime vs the plugin\'s PyTorch predictions: max |diff| of scores (sorted) '
          f'and boxes (to the nearest, pixels) {worst:.1e}')

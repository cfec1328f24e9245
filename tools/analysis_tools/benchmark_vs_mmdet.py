"""The plugin's DETR against MMDetection's own DETR (and transformers' DETR),
with the same weights.

    python tools/analysis_tools/benchmark_vs_mmdet.py [--device cpu|cuda]
        [--batch-size 2] [--img-size 512] [--dtype fp32|bf16|fp16]
        [--warmup 2] [--iters 5] [--depth 50] [--num-gts 10] [--skip ROW ...]
        [--solver numba|lapx|scipy] [--cpu-gemm onednn|aten] [--no-prime]

Both models are built from their R50 configs (the plugin's
``configs/detr_r50_8xb2-150e_coco.py`` and mmdet's
``detr/detr_r50_8xb2-150e_coco.py``), the plugin's random weights are copied
into mmdet's through the parity converter, both get the same batches, and
the script prints one table with medians, spreads (min..max) and ratios
(their time / plugin time: above 1 means the plugin is faster), after
checking that outputs and assignments agree. Every row runs the
implementations in alternation, so a drift of the machine's speed hits all
alike, and each timed call right after an untimed call of the same
implementation, so that none pays for what the one before it left behind
(``--no-prime`` times them back to back). The train step uses each config's
own optimizer wrapper (AdamW with gradient clipping; the plugin's recipe
asks for PyTorch's fused AdamW).

When ``transformers`` is installed (an optional extra, never imported by the
plugin), a third column times its ``DetrForObjectDetection`` built with the
same weights (``mmdet_detr_plugin.utils.convert_hf``), run the way
transformers runs it (``--skip hf`` leaves it out).

The matching rows run the plugin's assigner with ``--solver``: by default
the fastest one installed, the plugin's own ``numba`` solver when numba is
installed, else ``lapx`` when the ``lapx`` package is, else scipy's (the
assigner's default); the model rows use the configs as they are.

On CPU the plugin's linear layers multiply float32 matrices on oneDNN
(``mmdet_detr_plugin.models.layers.linear``); ``--cpu-gemm aten`` gives
them ``F.linear``, the MKL path that mmdet's and transformers' DETR take,
to see what the rest of the plugin's changes are worth alone. Its dropout
masks come from numpy's generator, or from a compiled numba kernel with
``DETR_PLUGIN_DROPOUT_MASK=numba`` in the environment
(``mmdet_detr_plugin.models.layers.dropout``).
"""
import argparse
import copy
import gc
import importlib.util
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Tuple

import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
MATCHING_CASES = ((100, 10, 2), (300, 100, 8), (900, 500, 4))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--img-size', type=int, default=512)
    parser.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16'], default='fp32',
                        help='autocast dtype for the model rows (matching stays fp32)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--depth', type=int, default=50, help='ResNet depth')
    parser.add_argument('--num-gts', type=int, default=10, help='boxes per image')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--skip', nargs='*', default=[],
                        choices=['train', 'owned', 'inference', 'matching', 'memory', 'hf'])
    parser.add_argument('--solver', choices=['numba', 'lapx', 'scipy'],
                        default=next(name for name, module in
                                     (('numba', 'numba'), ('lapx', 'lap'), ('scipy', 'scipy'))
                                     if importlib.util.find_spec(module)),
                        help="the plugin assigner's solver in the matching rows (default: "
                             'numba when installed, else lapx when installed, else scipy)')
    parser.add_argument('--cpu-gemm', choices=['onednn', 'aten'],
                        default=os.environ.get('DETR_PLUGIN_CPU_GEMM', 'onednn'),
                        help="the plugin's float32 CPU linear layers: on oneDNN (default) or "
                             'F.linear (aten)')
    parser.add_argument('--no-prime', action='store_true',
                        help='time each call right after the previous implementation\'s call, '
                             'not after an untimed call of its own (see timed_pair)')
    parser.add_argument('--json', help='also write the rows to this file')
    # internal: measure the peak memory of one implementation in a fresh process
    parser.add_argument('--memory-of', choices=['plugin', 'mmdet', 'hf'], help=argparse.SUPPRESS)
    return parser.parse_args()


# --------------------------------------------------------------------------- #
# models and data
# --------------------------------------------------------------------------- #
def load_configs() -> Tuple[Config, Config]:
    """The plugin's and mmdet's DETR R50 configs."""
    import mmdet
    ours = Config.fromfile(osp.join(REPO, 'configs', 'detr_r50_8xb2-150e_coco.py'))
    theirs = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', 'detr',
                                      'detr_r50_8xb2-150e_coco.py'))
    return ours, theirs


def build_models(depth: int, device: str, only: str = None
                 ) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """Plugin and mmdet DETR from their configs, with the same weights
    (``only='plugin'`` or ``'mmdet'``: build that one alone, the other is None)."""
    import mmdet_detr_plugin  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmdet_detr_plugin.utils import plugin_to_mmdet
    register_all_modules()
    ours, theirs = (cfg.model for cfg in load_configs())
    for cfg in (ours, theirs):
        cfg.backbone.depth = depth
        cfg.backbone.init_cfg = None  # random weights: nothing to download
    if depth < 50:
        ours.neck.in_channels = 512
        theirs.neck.in_channels = [512]
    torch.manual_seed(0)
    plugin = MODELS.build(ours)
    plugin.init_weights()
    if only == 'plugin':
        return plugin.to(device), None
    reference = MODELS.build(theirs)
    reference.load_state_dict(plugin_to_mmdet(plugin.state_dict()), strict=True)
    if only == 'mmdet':
        del plugin
        return None, reference.to(device)
    return plugin.to(device), reference.to(device)


def make_batch(batch_size: int, img_size: int, num_gts: int, device: str, seed: int = 0):
    """Random images [B, 3, S, S] (one padded to a smaller size) and boxes."""
    from mmdet.structures import DetDataSample
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch_size, 3, img_size, img_size, generator=gen)
    samples = []
    for i in range(batch_size):
        h = img_size if i == 0 else img_size * 3 // 4  # padding in the batch
        w = img_size
        inputs[i, :, h:] = 0
        xy = torch.rand(num_gts, 2, generator=gen) * torch.tensor([w * 0.7, h * 0.7])
        wh = (torch.rand(num_gts, 2, generator=gen) * 0.25 + 0.05) * torch.tensor([w, h])
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             batch_input_shape=(img_size, img_size),
                                             scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1).to(device),
            labels=torch.randint(0, 80, (num_gts, ), generator=gen).to(device))
        samples.append(sample)
    return inputs.to(device), samples


# --------------------------------------------------------------------------- #
# timing
# --------------------------------------------------------------------------- #
def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed_pair(fns: Tuple[Callable[[], None], ...], warmup: int, iters: int, device: str,
               primed: bool = True) -> List[List[float]]:
    """Time several functions in alternation (plugin, mmdet, plugin, ...), so
    that drifts of the machine's speed hit all alike.

    With ``primed`` (the default), each timed call directly follows an
    untimed call of the same function, so that it runs in the state its own
    previous call left, as in a training loop. Without it, one function's
    deferred costs land in the next one's timed window: glibc returns freed
    memory to the OS lazily, in whichever ``free`` next finds the top of the
    heap above its trim threshold, and after transformers' matcher at N=900
    that was the plugin's cost preparation: 55-85 ms of system time in
    ``brk``, against 4 ms after its own call."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(iters):
        for fn, out in zip(fns, times):
            if primed:
                fn()
            out += timed(fn, 0, 1, device)
    return times


def timed(fn: Callable[[], None], warmup: int, iters: int, device: str) -> List[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def autocast(device: str, dtype: str):
    if dtype == 'fp32':
        return torch.autocast(device_type=device.split(':')[0], enabled=False)
    return torch.autocast(device_type=device.split(':')[0],
                          dtype=torch.bfloat16 if dtype == 'bf16' else torch.float16)


def train_step_fn(model, inputs, samples, device, dtype, optim_wrapper: dict
                  ) -> Callable[[], None]:
    """Loss, backward, gradient clipping and optimizer step, with the
    optimizer wrapper of the model's own config (what the Runner does)."""
    from mmengine.optim import build_optim_wrapper
    wrapper = build_optim_wrapper(model, copy.deepcopy(optim_wrapper))

    def step():
        with autocast(device, dtype):
            losses = model.loss(inputs, samples)
        wrapper.update_params(sum(losses.values()))
    return step


def owned_part_fn(model, inputs, samples, device, dtype) -> Callable[[], None]:
    """neck + transformer + head + matching + loss, forward and backward, on
    fixed backbone features."""
    with torch.no_grad(), autocast(device, dtype):
        feats = model.backbone(inputs)
    feats = tuple(f.detach() for f in feats)

    def step():
        with autocast(device, dtype):
            x = model.neck(feats)
            head_inputs = model.forward_transformer(x, samples)
            losses = model.bbox_head.loss(**head_inputs, batch_data_samples=samples)
        sum(losses.values()).backward()
        model.zero_grad(set_to_none=True)
    return step


def inference_fn(model, inputs, samples, device, dtype) -> Callable[[], None]:
    one, one_sample = inputs[:1], [copy.deepcopy(samples[0])]

    def run():
        with torch.no_grad(), autocast(device, dtype):
            model.predict(one, one_sample)
    return run


# --------------------------------------------------------------------------- #
# agreement
# --------------------------------------------------------------------------- #
def check_agreement(plugin, reference, inputs, samples) -> Dict[str, float]:
    plugin.eval()
    reference.eval()
    with torch.no_grad():
        cls_p, box_p = plugin._forward(inputs, samples)
        cls_m, box_m = reference._forward(inputs, samples)
        loss_p = plugin.loss(inputs, samples)
        loss_m = reference.loss(inputs, samples)
    plugin.train()
    reference.train()
    scale = max(cls_m.abs().max().item(), 1.0)
    return dict(
        logits=(cls_p - cls_m).abs().max().item() / scale,
        boxes=(box_p - box_m).abs().max().item(),
        losses=max(abs(loss_p[k].item() - loss_m[k].item()) for k in loss_m))


def matching_inputs(n: int, m: int, b: int, device: str, layers: int = 6, seed: int = 0):
    """Random predictions of all layers and targets. The predictions require
    grad, as the heads' outputs do when a train step matches them."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(layers, b, n, 81, generator=gen).to(device).requires_grad_()
    boxes = (torch.rand(layers, b, n, 4, generator=gen) * 0.5 + 0.2).to(device).requires_grad_()
    labels = [torch.randint(0, 80, (m, ), generator=gen).to(device) for _ in range(b)]
    gt_boxes = [(torch.rand(m, 4, generator=gen) * 0.4 + 0.3).to(device) for _ in range(b)]
    shapes = [(640, 800)] * b
    return logits, boxes, labels, gt_boxes, shapes


def bench_matching(n, m, b, device, warmup, iters, with_hf=False, solver='scipy', primed=True):
    """All 6 layers x B images: the plugin's batched call against mmdet's
    HungarianAssigner called once per layer and image, as DETRHead does (and
    transformers' HungarianMatcher once per layer, as its DETR loss does).
    All three get the same predictions, which require grad as in training:
    mmdet's costs are then recorded by autograd, as in its DETRHead's loss;
    the plugin's and transformers' matchers run under no_grad."""
    from mmdet.registry import TASK_UTILS
    from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
    from mmdet_detr_plugin.models.task_modules import PluginHungarianAssigner
    ours = PluginHungarianAssigner(solver=solver)
    theirs = TASK_UTILS.build(dict(type='HungarianAssigner', match_costs=[
        dict(type='ClassificationCost', weight=1.),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='IoUCost', iou_mode='giou', weight=2.0)]))
    logits, boxes, labels, gt_boxes, shapes = matching_inputs(n, m, b, device)
    h, w = shapes[0]
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=device)
    gts = [InstanceData(labels=lab, bboxes=bbox_cxcywh_to_xyxy(g) * scale)
           for lab, g in zip(labels, gt_boxes)]
    meta = dict(img_shape=(h, w))

    def run_mmdet():
        out = []
        for layer in range(logits.shape[0]):
            for i in range(b):
                pred = InstanceData(scores=logits[layer, i],
                                    bboxes=bbox_cxcywh_to_xyxy(boxes[layer, i]) * scale)
                out.append(theirs.assign(pred, gts[i], meta).gt_inds)
        return out

    def run_plugin():
        return ours.assign_batch(logits, boxes, labels, gt_boxes, shapes)

    # identical assignments
    ref, got = run_mmdet(), run_plugin()
    same = True
    for layer in range(logits.shape[0]):
        for i in range(b):
            inds = torch.zeros(n, dtype=torch.long, device=device)
            inds[got[i][0][layer]] = got[i][1][layer] + 1
            same &= torch.equal(inds, ref[layer * b + i])
    fns = [run_plugin, run_mmdet]
    if with_hf:
        import _hf_detr_rows as hf_rows
        run_hf = hf_rows.matching_fn(logits, boxes, labels, gt_boxes)
        for layer, per_image in enumerate(run_hf()):
            for i, (q, g) in enumerate(per_image):
                inds = torch.zeros(n, dtype=torch.long)
                inds[q] = g + 1
                same &= torch.equal(inds, ref[layer * b + i].cpu())
        fns.append(run_hf)
    times = timed_pair(fns, warmup, iters, device, primed)
    return times[0], times[1], times[2] if with_hf else None, same


def matching_costs_path(device: str, layers: int = 6) -> str:
    """How the plugin's assigner computes DETR's costs on ``device``, and in
    which matching rows (the fused kernel runs from a size per image)."""
    from mmdet_detr_plugin.models.task_modules.assigners import fused_costs
    from mmdet_detr_plugin.models.task_modules.assigners.hungarian_assigner import \
        FUSED_MIN_ELEMENTS
    if device.startswith('cuda'):
        return 'costs on the GPU (eager)'
    if not fused_costs.kernel():
        return 'costs eager (numba not installed)'
    fused = [n for n, m, _ in MATCHING_CASES if layers * m * n >= FUSED_MIN_ELEMENTS]
    eager = [n for n, _, _ in MATCHING_CASES if n not in fused]
    where = ', '.join(f'N={n}' for n in fused)
    if eager:
        where += '; eager at ' + ', '.join(f'N={n}' for n in eager) + \
            f' (below {FUSED_MIN_ELEMENTS} costs per image)'
    return f'costs fused (numba) at {where}'


# --------------------------------------------------------------------------- #
# memory (each implementation in a fresh process, so peaks do not mix)
# --------------------------------------------------------------------------- #
def peak_memory_of(impl: str, args) -> float:
    """Run one train step of one implementation in a child process; MiB."""
    cmd = [sys.executable, __file__, '--memory-of', impl, '--device', args.device,
           '--batch-size', str(args.batch_size), '--img-size', str(args.img_size),
           '--depth', str(args.depth), '--dtype', args.dtype, '--num-gts', str(args.num_gts),
           '--cpu-gemm', args.cpu_gemm]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def memory_child(args) -> None:
    inputs, samples = make_batch(args.batch_size, args.img_size, args.num_gts, args.device)
    if args.memory_of == 'hf':
        import _hf_detr_rows as hf_rows
        from mmdet_detr_plugin.utils.convert_hf import build_hf_detr
        plugin, _ = build_models(args.depth, 'cpu', only='plugin')
        model = build_hf_detr(plugin).to(args.device)
        del plugin
        gc.collect()
        step = hf_rows.train_step_fn(model, inputs, samples,
                                     lambda: autocast(args.device, args.dtype))
    else:
        plugin, reference = build_models(args.depth, args.device, only=args.memory_of)
        model = plugin if args.memory_of == 'plugin' else reference
        del plugin, reference
        gc.collect()  # for mmdet: the plugin model built for the shared weights is gone
        optim_wrapper = load_configs()[0 if args.memory_of == 'plugin' else 1].optim_wrapper
        step = train_step_fn(model, inputs, samples, args.device, args.dtype, optim_wrapper)
    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    step()
    step()
    if args.device.startswith('cuda'):
        print(torch.cuda.max_memory_allocated() / 2**20)
    else:
        print(peak_rss_mib())


def peak_rss_mib() -> float:
    """Peak resident memory of this process's own address space. On Linux,
    VmHWM; not ``ru_maxrss``, which after fork + exec also holds the parent's
    peak (the kernel carries the forked address space's high-water mark over
    the exec), so every child would report at least the parent's size."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --------------------------------------------------------------------------- #
def fmt(times: List[float]) -> str:
    med = statistics.median(times)
    return f'{med * 1e3:9.1f} ms ({min(times) * 1e3:.0f}..{max(times) * 1e3:.0f})'


def main() -> None:
    args = parse_args()
    import logging
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # no init / param-group logs
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # _hf_detr_rows
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmdet_detr_plugin.models.layers.linear import cpu_gemm, set_cpu_gemm
    set_cpu_gemm(args.cpu_gemm)
    if args.memory_of:
        memory_child(args)
        return
    device = args.device
    plugin, reference = build_models(args.depth, device)
    plugin.train()
    reference.train()
    inputs, samples = make_batch(args.batch_size, args.img_size, args.num_gts, device)
    agree = check_agreement(plugin, reference, inputs, samples)
    hf = None
    import _hf_detr_rows as hf_rows
    hf_why_not = hf_rows.why_not_run(args.depth, 'hf' in args.skip)
    if hf_why_not is None:
        from mmdet_detr_plugin.utils.convert_hf import build_hf_detr
        hf = build_hf_detr(plugin).to(device).train()
        agree_hf = hf_rows.agreement(plugin, hf, inputs, samples)

    def hf_autocast():
        return autocast(device, args.dtype)

    rows = []  # (name, plugin times, mmdet times, transformers times or None)
    model_rows = (('train', 'train step, end to end', train_step_fn, hf_rows.train_step_fn, True),
                  ('owned', 'after the backbone: fwd+bwd', owned_part_fn, hf_rows.owned_part_fn,
                   True),
                  ('inference', 'inference, 1 image', inference_fn, hf_rows.inference_fn, False))
    optim_wrappers = [cfg.optim_wrapper for cfg in load_configs()]
    for key, name, make_fn, make_hf_fn, training in model_rows:
        if key in args.skip:
            continue
        fns = []
        for model, optim_wrapper in zip((plugin, reference), optim_wrappers):
            model.train(training)
            extra = (optim_wrapper, ) if make_fn is train_step_fn else ()
            fns.append(make_fn(model, inputs, samples, device, args.dtype, *extra))
        if hf is not None:
            hf.train(training)
            fns.append(make_hf_fn(hf, inputs, samples, hf_autocast))
        times = timed_pair(fns, args.warmup, args.iters, device, not args.no_prime)
        rows.append((name, times[0], times[1], times[2] if hf is not None else None))
    same_assignments = []
    if 'matching' not in args.skip:
        for n, m, b in MATCHING_CASES:
            t_p, t_m, t_h, same = bench_matching(n, m, b, device, args.warmup, args.iters,
                                                 with_hf=hf is not None, solver=args.solver,
                                                 primed=not args.no_prime)
            same_assignments.append(same)
            rows.append((f'matching 6 layers, N={n} M={m} B={b}', t_p, t_m, t_h))
    memory = None
    if 'memory' not in args.skip:
        memory = [peak_memory_of(impl, args) for impl in ('plugin', 'mmdet')]
        memory.append(peak_memory_of('hf', args) if hf is not None else None)

    kind = 'CUDA max allocated' if device.startswith('cuda') else 'CPU peak RSS'
    dev = torch.cuda.get_device_name() if device.startswith('cuda') else \
        f'CPU, {torch.get_num_threads()} threads'
    order = ('right after the other implementations' if args.no_prime else
             'after an untimed run of its own')
    print(f'\nDETR R{args.depth}, batch {args.batch_size}, {args.img_size}x{args.img_size}, '
          f'{args.dtype}, {dev}; median (min..max) of {args.iters} runs after {args.warmup} '
          f'warm-up, in alternation, each {order}; speed-up = their time / plugin time\n')
    print(f'| {"row":38} | {"plugin":>22} | {"mmdet DETR":>22} | {"transformers DETR":>22} '
          f'| {"vs mmdet":>8} | {"vs HF":>7} |')
    print(f'|{"-" * 40}|{"-" * 24}|{"-" * 24}|{"-" * 24}|{"-" * 10}|{"-" * 9}|')
    table = []
    for name, t_p, t_m, t_h in rows:
        med_p, med_m = statistics.median(t_p), statistics.median(t_m)
        med_h = statistics.median(t_h) if t_h else None
        hf_cell = fmt(t_h) if t_h else 'not run'
        hf_ratio = f'{med_h / med_p:6.2f}x' if t_h else '—'
        print(f'| {name:38} | {fmt(t_p):>22} | {fmt(t_m):>22} | {hf_cell:>22} '
              f'| {med_m / med_p:7.2f}x | {hf_ratio:>7} |')
        table.append(dict(row=name, plugin_ms=med_p * 1e3, mmdet_ms=med_m * 1e3,
                          hf_ms=med_h * 1e3 if med_h else None, speedup=med_m / med_p,
                          speedup_vs_hf=med_h / med_p if med_h else None))
    if memory:
        cells = [f'{x:.0f} MiB' if x else 'not run' for x in memory]
        hf_ratio = f'{memory[2] / memory[0]:6.2f}x' if memory[2] else '—'
        print(f'| {"peak memory, train step (" + kind + ")":38} | {cells[0]:>22} | '
              f'{cells[1]:>22} | {cells[2]:>22} | {memory[1] / memory[0]:7.2f}x | {hf_ratio:>7} |')
        table.append(dict(row='peak memory MiB', plugin=memory[0], mmdet=memory[1],
                          hf=memory[2]))
    print(f'\nagreement with mmdet (same weights, eval mode): max |logit diff| / max |logit| '
          f'{agree["logits"]:.1e}, max |box diff| {agree["boxes"]:.1e}, max |loss diff| '
          f'{agree["losses"]:.1e}')
    if hf is not None:
        print(f'agreement with transformers: last layer max |logit diff| / max |logit| '
              f'{agree_hf["logits"]:.1e}, max |box diff| {agree_hf["boxes"]:.1e}, total loss '
              f'relative diff {agree_hf["loss"]:.1e}')
    else:
        print(f'transformers column {hf_why_not}')
    if not device.startswith('cuda'):
        from mmdet_detr_plugin.models.layers.dropout import generator
        print(f"plugin's CPU kernels: float32 linear layers on "
              f"{'oneDNN' if cpu_gemm() == 'onednn' else 'F.linear, as the others'}, "
              f'dropout masks drawn by {generator()}')
    print(f"plugin's matching rows: solver='{args.solver}', {matching_costs_path(device)}")
    print('identical assignments in every matching row'
          f'{" (all three)" if hf is not None else ""}: '
          f'{all(same_assignments) if same_assignments else "not run"}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(args=vars(args), cpu_gemm=cpu_gemm(), rows=table, agreement=agree,
                           agreement_hf=agree_hf if hf is not None else None,
                           same_assignments=same_assignments), f, indent=1)


if __name__ == '__main__':
    main()

"""The rows of ``benchmark_vs_mmdet.py``: models, inputs, timed functions,
agreement checks and the child processes (memory, concurrent runs)."""
import copy
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
MATCHING_CASES = ((100, 10, 2), (300, 100, 8), (900, 500, 4))


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


def build_models(depth: int, device: str, accel, only: Optional[str] = None
                 ) -> Tuple[Optional[torch.nn.Module], Optional[torch.nn.Module]]:
    """Plugin and mmdet DETR from their configs, with the same weights
    (``only='plugin'`` or ``'mmdet'``: that one alone, the other is None)."""
    import mmdet_detr_plugin  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmdet_detr_plugin.converters import plugin_to_mmdet
    register_all_modules()
    ours, theirs = (cfg.model for cfg in load_configs())
    ours.accel = accel
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
        return None, reference.to(device)
    return plugin.to(device), reference.to(device)


def make_batch(batch_size: int, img_size: int, num_gts: int, device: str, seed: int = 0):
    """Random images [B, 3, S, S] (image 1 on a quarter padding) and boxes."""
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


def timed(fn: Callable[[], object], iters: int, device: str) -> List[float]:
    times = []
    for _ in range(iters):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def timed_pair(fns: Sequence[Callable[[], object]], warmup: int, iters: int, device: str,
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
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(iters):
        for fn, out in zip(fns, times):
            if primed:
                fn()
            out += timed(fn, 1, device)
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
# agreement and matching
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


def bench_matching(ours, n, m, b, device, warmup, iters, with_hf=False, primed=True):
    """All 6 layers x B images: the plugin's assigner (``ours``, the model's
    own, with its accel kernels) in one batched call against mmdet's
    HungarianAssigner called once per layer and image, as DETRHead does (and
    transformers' HungarianMatcher once per layer, as its DETR loss does).
    All get the same predictions, which require grad as in training: mmdet's
    costs are then recorded by autograd, as in its DETRHead's loss; the
    plugin's and transformers' matchers run under no_grad."""
    from mmdet.registry import TASK_UTILS
    from mmdet.structures.bbox import bbox_cxcywh_to_xyxy

    from mmdet_detr_plugin.structures.box_ops import image_scale
    theirs = TASK_UTILS.build(dict(type='HungarianAssigner', match_costs=[
        dict(type='ClassificationCost', weight=1.),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='IoUCost', iou_mode='giou', weight=2.0)]))
    logits, boxes, labels, gt_boxes, shapes = matching_inputs(n, m, b, device)
    scale = image_scale(shapes[0], gt_boxes[0])
    gts = [InstanceData(labels=lab, bboxes=bbox_cxcywh_to_xyxy(g) * scale)
           for lab, g in zip(labels, gt_boxes)]
    meta = dict(img_shape=shapes[0])

    def run_mmdet():
        return [theirs.assign(InstanceData(scores=logits[layer, i],
                                           bboxes=bbox_cxcywh_to_xyxy(boxes[layer, i]) * scale),
                              gts[i], meta).gt_inds
                for layer in range(logits.shape[0]) for i in range(b)]

    def run_plugin():
        return ours.assign_batch(logits, boxes, labels, gt_boxes, shapes)

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
    return times, same


# --------------------------------------------------------------------------- #
# child processes: peak memory, and several train steps at once
# --------------------------------------------------------------------------- #
def child_command(args, **options) -> List[str]:
    """This benchmark's command line for a child process of ``args``'s setting."""
    cmd = [sys.executable, osp.join(osp.dirname(__file__), 'benchmark_vs_mmdet.py'),
           '--device', args.device, '--batch-size', str(args.batch_size), '--img-size',
           str(args.img_size), '--depth', str(args.depth), '--dtype', args.dtype, '--num-gts',
           str(args.num_gts), '--accel', args.accel]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    for key, value in options.items():
        cmd += [f'--{key.replace("_", "-")}', str(value)]
    return cmd


def train_step_of(impl: str, args) -> Callable[[], None]:
    """The R50 train step of one implementation, built alone in this process."""
    inputs, samples = make_batch(args.batch_size, args.img_size, args.num_gts, args.device)
    if impl == 'hf':
        import _hf_detr_rows as hf_rows

        from mmdet_detr_plugin.converters import build_hf_detr
        plugin, _ = build_models(args.depth, 'cpu', args.accel_cfg, only='plugin')
        model = build_hf_detr(plugin).to(args.device)
        del plugin
        return hf_rows.train_step_fn(model, inputs, samples,
                                     lambda: autocast(args.device, args.dtype))
    plugin, reference = build_models(args.depth, args.device, args.accel_cfg, only=impl)
    model = plugin if impl == 'plugin' else reference
    optim_wrapper = load_configs()[0 if impl == 'plugin' else 1].optim_wrapper
    return train_step_fn(model, inputs, samples, args.device, args.dtype, optim_wrapper)


def peak_memory_of(impl: str, args) -> float:
    """Peak memory (MiB) of two train steps of one implementation, in a
    fresh process so that peaks do not mix."""
    out = subprocess.run(child_command(args, memory_of=impl), capture_output=True, text=True,
                         check=True).stdout
    return float(out.strip().splitlines()[-1])


def memory_child(args) -> None:
    step = train_step_of(args.memory_of, args)
    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    step()
    step()
    print(torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith('cuda')
          else peak_rss_mib())


def peak_rss_mib() -> float:
    """Peak resident memory of this process's own address space (VmHWM on
    Linux; not ``ru_maxrss``, which after fork + exec also holds the parent's
    peak)."""
    import resource
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_times_together(impl: str, args, processes: int) -> List[float]:
    """Median step time (s) of each of ``processes`` processes running the
    same train step at once. Every process builds its model and warms up
    first; they wait for each other at a barrier, so that the timed steps
    overlap."""
    import tempfile
    with tempfile.TemporaryDirectory() as barrier:
        procs = [subprocess.Popen(child_command(args, steps_of=impl, barrier=barrier,
                                                processes=processes, steps=args.pair_steps),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(processes)]
        outs = [proc.communicate() for proc in procs]
    for proc, (_, err) in zip(procs, outs):
        if proc.returncode:
            raise RuntimeError(f'a benchmark child failed:\n{err[-3000:]}')
    return [statistics.median(json.loads(out.strip().splitlines()[-1])) for out, _ in outs]


def steps_child(args) -> None:
    """Warm up, wait at the barrier for the other processes, time the steps,
    print their times (s) as JSON."""
    step = train_step_of(args.steps_of, args)
    step()
    step()
    open(osp.join(args.barrier, f'ready-{os.getpid()}'), 'w').close()
    while len(os.listdir(args.barrier)) < args.processes:
        time.sleep(0.01)
    print(json.dumps(timed(step, args.steps, args.device)))

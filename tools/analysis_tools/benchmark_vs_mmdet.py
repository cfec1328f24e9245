"""The plugin's DETR against MMDetection's own DETR (and transformers' DETR),
with the same weights.

    python tools/analysis_tools/benchmark_vs_mmdet.py [--accel default|reference|JSON]
        [--device cpu|cuda] [--batch-size 2] [--img-size 512] [--dtype fp32|bf16|fp16]
        [--warmup 2] [--iters 5] [--depth 50] [--num-gts 10] [--skip ROW ...]
        [--pair-repeats 3] [--pair-steps 3] [--no-prime] [--json OUT.json]
        [--onnx-size 800 1333] [--onnx-batches 1 4]

Both models are built from their R50 configs (the plugin's
``configs/detr_r50_8xb2-150e_coco.py``, with ``model.accel`` set by
``--accel``, and mmdet's ``detr/detr_r50_8xb2-150e_coco.py``); the plugin's
random weights are copied into mmdet's through the converter, both get the
same batches, and the script prints one table with medians, spreads
(min..max) and ratios (their time / plugin time: above 1 means the plugin is
faster), after checking that outputs and assignments agree. Every row runs
the implementations in alternation, so a drift of the machine's speed hits
all alike, and each timed call right after an untimed call of the same
implementation, so that none pays for what the one before it left behind
(``--no-prime`` times them back to back). The train step uses each config's
own optimizer wrapper (AdamW with gradient clipping; the plugin's recipe
asks for PyTorch's fused AdamW). The matching rows use the plugin model's
own assigner, with the kernels ``--accel`` gives it.

The ``together`` rows run the train step in two processes at once, as on a
shared machine, each implementation against itself, ``--pair-repeats`` times,
and the same step alone in one process: each process's median step time, and
the slow-down against alone. Like the plugin's tools, the benchmark lets
OpenMP's threads sleep when idle (``tools/_openmp.py``).

When ``transformers`` is installed (an optional extra, never imported by the
plugin), a third column times its ``DetrForObjectDetection`` built with the
same weights (``mmdet_detr_plugin.converters.build_hf_detr``), run the way
transformers runs it (``--skip hf`` leaves it out).

The ONNX Runtime rows (when ``onnx``, ``onnxscript`` and ``onnxruntime``
are installed; CPU only) export the plugin's model (same weights, reference
computation) with dynamic shapes and time its inference in ONNX Runtime
against the plugin's and mmdet's PyTorch inference, at ``--onnx-size``
(default 800x1333, the COCO test scale) for each of ``--onnx-batches``
(default 1 and 4), in alternation, after checking that the predictions agree.

``--json`` writes everything (the CPU, the kernels the plugin ran, every
row); ``benchmark_report.py`` turns such files into ``docs/benchmark.md``.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _openmp import passive_wait_policy  # noqa: E402

passive_wait_policy()  # before torch loads OpenMP

import torch  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import _benchmark_rows as rows  # noqa: E402
import _hf_detr_rows as hf_rows  # noqa: E402
import _onnx_rows as onnx_rows  # noqa: E402

ROW_KEYS = ['train', 'owned', 'inference', 'matching', 'together', 'memory', 'hf',
            'onnxruntime']


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--accel', default='default',
                        help="the plugin's model.accel: default, reference, or a JSON dict "
                             'of kernels, e.g. \'{"linear": "torch"}\'')
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
    parser.add_argument('--skip', nargs='*', default=[], choices=ROW_KEYS)
    parser.add_argument('--onnx-size', type=int, nargs=2, default=[800, 1333],
                        metavar=('H', 'W'), help='image size of the ONNX Runtime rows')
    parser.add_argument('--onnx-batches', type=int, nargs='+', default=[1, 4],
                        help='batch sizes of the ONNX Runtime rows')
    parser.add_argument('--pair-repeats', type=int, default=3,
                        help='runs of two processes at once, per implementation')
    parser.add_argument('--pair-steps', type=int, default=3,
                        help='timed train steps per process in the together rows')
    parser.add_argument('--no-prime', action='store_true',
                        help='time each call right after the previous implementation\'s call, '
                             'not after an untimed call of its own (see timed_pair)')
    parser.add_argument('--json', help='also write the results to this file')
    # internal: the child processes of the memory and together rows
    for name in ('--memory-of', '--steps-of'):
        parser.add_argument(name, choices=['plugin', 'mmdet', 'hf'], help=argparse.SUPPRESS)
    parser.add_argument('--barrier', help=argparse.SUPPRESS)
    parser.add_argument('--processes', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--steps', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.accel.startswith('{'):
        args.accel_cfg = json.loads(args.accel)
    else:
        args.accel_cfg = args.accel
    return args


def model_rows(args, plugin, reference, hf, inputs, samples) -> list:
    """Train step, the part after the backbone, inference: times of each."""
    out = []
    specs = (('train', 'train step, end to end', rows.train_step_fn, hf_rows.train_step_fn, True),
             ('owned', 'after the backbone: fwd+bwd', rows.owned_part_fn,
              hf_rows.owned_part_fn, True),
             ('inference', 'inference, 1 image', rows.inference_fn, hf_rows.inference_fn, False))
    optim_wrappers = [cfg.optim_wrapper for cfg in rows.load_configs()]
    for key, name, make_fn, make_hf_fn, training in specs:
        if key in args.skip:
            continue
        fns = []
        for model, optim_wrapper in zip((plugin, reference), optim_wrappers):
            model.train(training)
            extra = (optim_wrapper, ) if make_fn is rows.train_step_fn else ()
            fns.append(make_fn(model, inputs, samples, args.device, args.dtype, *extra))
        if hf is not None:
            hf.train(training)
            fns.append(make_hf_fn(hf, inputs, samples,
                                  lambda: rows.autocast(args.device, args.dtype)))
        times = rows.timed_pair(fns, args.warmup, args.iters, args.device, not args.no_prime)
        out.append(dict(key=key, row=name, times=times))
    return out


def together_rows(args) -> list:
    """Each implementation alone, and in two processes at once."""
    out = []
    for impl in ('plugin', 'mmdet'):
        alone = rows.step_times_together(impl, args, 1)
        pairs = [rows.step_times_together(impl, args, 2) for _ in range(args.pair_repeats)]
        out.append(dict(impl=impl, alone_s=alone[0], pair_s=[t for pair in pairs for t in pair]))
    return out


def summarise(entry: dict) -> dict:
    """Times of one row -> medians (ms), spreads and ratios."""
    names = ('plugin', 'mmdet', 'hf')
    row = dict(key=entry['key'], row=entry['row'])
    for name, times in zip(names, entry['times']):
        row[f'{name}_ms'] = statistics.median(times) * 1e3
        row[f'{name}_range_ms'] = [min(times) * 1e3, max(times) * 1e3]
    row['speedup'] = row['mmdet_ms'] / row['plugin_ms']
    row['speedup_vs_hf'] = row['hf_ms'] / row['plugin_ms'] if 'hf_ms' in row else None
    return row


def fmt(ms: float, spread: list) -> str:
    return f'{ms:9.1f} ms ({spread[0]:.0f}..{spread[1]:.0f})'


def print_table(args, result: dict) -> None:
    dev = result['machine']['cpu_model'] if args.device == 'cpu' else \
        torch.cuda.get_device_name()
    order = ('right after the other implementations' if args.no_prime else
             'after an untimed run of its own')
    print(f'\nDETR R{args.depth}, batch {args.batch_size}, {args.img_size}x{args.img_size}, '
          f'{args.dtype}, {dev}, {torch.get_num_threads()} threads, plugin accel={args.accel}; '
          f'median (min..max) of {args.iters} runs after {args.warmup} warm-up, in alternation, '
          f'each {order}; speed-up = their time / plugin time\n')
    print(f'| {"row":38} | {"plugin":>22} | {"mmdet DETR":>22} | {"transformers DETR":>22} '
          f'| {"vs mmdet":>8} | {"vs HF":>7} |')
    print(f'|{"-" * 40}|{"-" * 24}|{"-" * 24}|{"-" * 24}|{"-" * 10}|{"-" * 9}|')
    for row in result['rows']:
        hf = fmt(row['hf_ms'], row['hf_range_ms']) if row.get('hf_ms') else 'not run'
        vs_hf = f'{row["speedup_vs_hf"]:6.2f}x' if row.get('speedup_vs_hf') else '—'
        print(f'| {row["row"]:38} | {fmt(row["plugin_ms"], row["plugin_range_ms"]):>22} | '
              f'{fmt(row["mmdet_ms"], row["mmdet_range_ms"]):>22} | {hf:>22} '
              f'| {row["speedup"]:7.2f}x | {vs_hf:>7} |')
    memory = result.get('memory')
    if memory:
        cells = [f'{memory[k]:.0f} MiB' if memory.get(k) else 'not run'
                 for k in ('plugin', 'mmdet', 'hf')]
        vs_hf = f'{memory["hf"] / memory["plugin"]:6.2f}x' if memory.get('hf') else '—'
        print(f'| {"peak memory, train step":38} | {cells[0]:>22} | {cells[1]:>22} | '
              f'{cells[2]:>22} | {memory["mmdet"] / memory["plugin"]:7.2f}x | {vs_hf:>7} |')
    for entry in result.get('together', []):
        pair = entry['pair_s']
        print(f'train step, 2 processes at once, {entry["impl"]}: {statistics.median(pair):.2f} s '
              f'({min(pair):.2f}..{max(pair):.2f}) per step and process, alone '
              f'{entry["alone_s"]:.2f} s: {statistics.median(pair) / entry["alone_s"]:.2f}x '
              'slower')
    agree = result['agreement']
    print(f'\nagreement with mmdet (same weights, eval mode): max |logit diff| / max |logit| '
          f'{agree["logits"]:.1e}, max |box diff| {agree["boxes"]:.1e}, max |loss diff| '
          f'{agree["losses"]:.1e}; identical assignments in every matching row: '
          f'{all(result["same_assignments"]) if result["same_assignments"] else "not run"}')
    print(f'transformers column: {result["hf_column"]}')
    onnx_rows.print_rows(result.get('onnxruntime', []), result.get('onnxruntime_rows'), fmt)
    print(f"plugin's kernels: {result['accel']}")


def main() -> None:
    args = parse_args()
    import logging

    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # no init / param-group logs
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_of:
        return rows.memory_child(args)
    if args.steps_of:
        return rows.steps_child(args)
    from mmdet_detr_plugin.accel import cpu
    plugin, reference = rows.build_models(args.depth, args.device, args.accel_cfg)
    inputs, samples = rows.make_batch(args.batch_size, args.img_size, args.num_gts, args.device)
    result = dict(args={k: v for k, v in vars(args).items() if k != 'accel_cfg'},
                  machine=dict(cpu.describe(), torch=torch.__version__,
                               omp_wait_policy=os.environ.get('OMP_WAIT_POLICY')),
                  accel=plugin.accel.to_dict(),
                  agreement=rows.check_agreement(plugin, reference, inputs, samples))
    hf, why_not = None, hf_rows.why_not_run(args.depth, 'hf' in args.skip)
    if why_not is None:
        from mmdet_detr_plugin.converters import build_hf_detr
        hf = build_hf_detr(plugin).to(args.device).train()
        result['agreement_hf'] = hf_rows.agreement(plugin, hf, inputs, samples)
    result['hf_column'] = why_not or 'run'
    entries = model_rows(args, plugin, reference, hf, inputs, samples)
    result['same_assignments'] = []
    if 'matching' not in args.skip:
        assigner = plugin.bbox_head.assigner
        for n, m, b in rows.MATCHING_CASES:
            times, same = rows.bench_matching(assigner, n, m, b, args.device, args.warmup,
                                              args.iters, hf is not None, not args.no_prime)
            result['same_assignments'].append(same)
            entries.append(dict(key=f'matching_{n}', row=f'matching 6 layers, N={n} M={m} B={b}',
                                times=times))
        result['matching_kernels'] = dict(
            solver=assigner.solver.name,
            cost_kernel=type(assigner.cost_kernel).__name__ if assigner.cost_kernel else None)
    result['rows'] = [summarise(entry) for entry in entries]
    if 'memory' not in args.skip:
        result['memory'] = {impl: rows.peak_memory_of(impl, args) for impl in ('plugin', 'mmdet')}
        result['memory']['hf'] = rows.peak_memory_of('hf', args) if hf is not None else None
    if 'together' not in args.skip:
        result['together'] = together_rows(args)
    why_not = onnx_rows.why_not_run(args.device, 'onnxruntime' in args.skip)
    result['onnxruntime_rows'] = why_not
    if why_not is None:
        result['onnxruntime'] = onnx_rows.onnxruntime_rows(args, plugin, reference)
    print_table(args, result)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()

"""Write the benchmark's results page (and the README's speed table) from the
JSON files of ``benchmark_vs_mmdet.py --json``.

    python tools/analysis_tools/benchmark_report.py docs/benchmarks/*.json \\
        --header docs/benchmarks/method.md --ablation docs/benchmarks/ablation/*.json \\
        --out docs/benchmark.md --readme README.md

Each file gives one section (its machine, its settings, every row, memory,
the runs of two processes at once, agreement); files of the same machine
with ``--accel default`` and ``--accel reference`` also give a table of what
the speed kernels are worth there, and ``--ablation`` files (a default run,
then runs changing one kernel each) a table of what each kernel is worth.
``--readme`` rewrites the table between the README's ``<!-- speed-table -->``
markers from the newest file run with the default setting; ``--deployment``
the ONNX Runtime table between ``docs/deployment.md``'s ``<!-- onnx-speed -->``
markers, from the files that have ONNX Runtime rows. Nothing is typed
by hand: rerun the benchmark, then this.
"""
import argparse
import json
import os.path as osp
import statistics
from typing import Dict, List, Optional

MARK_BEGIN, MARK_END = '<!-- speed-table -->', '<!-- /speed-table -->'
ONNX_BEGIN, ONNX_END = '<!-- onnx-speed -->', '<!-- /onnx-speed -->'
ROW_NAMES = {
    'train': 'train step, end to end (loss, backward, clipping, AdamW)',
    'owned': 'after the backbone (projection, transformer, heads, matching, loss), fwd + bwd',
    'inference': 'inference, 1 image (with post-processing)',
    'matching_100': 'matching, 6 layers, N=100 queries, M=10 boxes, B=2',
    'matching_300': 'matching, 6 layers, N=300, M=100, B=8',
    'matching_900': 'matching, 6 layers, N=900, M=500, B=4',
}


def load(path: str) -> dict:
    with open(path) as f:
        result = json.load(f)
    result['path'] = path
    return result


def ms(value: Optional[float]) -> str:
    if value is None:
        return '—'
    return f'{value:.1f} ms' if value < 100 else f'{value:.0f} ms'


def ratio(value: Optional[float]) -> str:
    return '—' if value is None else f'{value:.2f}x'


def setting(result: dict) -> str:
    args = result['args']
    return (f"R{args['depth']}, batch {args['batch_size']}, {args['img_size']}x{args['img_size']}"
            f" (one image a quarter padding), {args['dtype']}, {args['device']}, "
            f"{result['machine']['torch_threads']} threads, plugin `--accel {args['accel']}`; "
            f"median of {args['iters']} runs after {args['warmup']} warm-up")


def rows_table(result: dict) -> List[str]:
    lines = ['| row | plugin | mmdet DETR | transformers DETR | vs mmdet | vs transformers |',
             '|---|---|---|---|---|---|']
    for row in result['rows']:
        lines.append(f"| {ROW_NAMES.get(row['key'], row['row'])} | {ms(row['plugin_ms'])} | "
                     f"{ms(row['mmdet_ms'])} | {ms(row.get('hf_ms'))} | {ratio(row['speedup'])} |"
                     f" {ratio(row.get('speedup_vs_hf'))} |")
    memory = result.get('memory')
    if memory:
        hf = memory.get('hf')
        hf_cell = f'{hf:.0f} MiB' if hf else '—'
        hf_ratio = f"{hf / memory['plugin']:.2f}x" if hf else '—'
        lines.append(f"| peak memory of a train step (fresh process) | {memory['plugin']:.0f} MiB |"
                     f" {memory['mmdet']:.0f} MiB | {hf_cell} | "
                     f"{memory['mmdet'] / memory['plugin']:.2f}x less | {hf_ratio} |")
    return lines


def together_lines(result: dict) -> List[str]:
    entries = {e['impl']: e for e in result.get('together', [])}
    if not entries:
        return []
    lines = ['', 'Train step, two processes of the same implementation at once (each '
             'process\'s median step time; spread over the runs and processes):', '',
             '| implementation | alone | two at once | slower than alone |', '|---|---|---|---|']
    for impl, entry in entries.items():
        pair = entry['pair_s']
        lines.append(f"| {impl} | {entry['alone_s']:.2f} s | {statistics.median(pair):.2f} s "
                     f"({min(pair):.2f}..{max(pair):.2f}) | "
                     f"{statistics.median(pair) / entry['alone_s']:.2f}x |")
    if {'plugin', 'mmdet'} <= set(entries):
        plugin = statistics.median(entries['plugin']['pair_s'])
        mmdet = statistics.median(entries['mmdet']['pair_s'])
        lines.append(f'\nUnder that load the plugin\'s step is {mmdet / plugin:.2f}x faster than '
                     'mmdet\'s.')
    return lines


def section(result: dict) -> List[str]:
    machine = result['machine']
    agree = result['agreement']
    lines = [f"### {machine['cpu_model']}, `--accel {result['args']['accel']}` "
             f"(`{osp.basename(result['path'])}`)", '']
    if result['rows']:  # a file of the ONNX Runtime rows alone has none
        lines += [setting(result) + '.', ''] + rows_table(result)
    lines += together_lines(result)
    lines += onnx_table(result)
    lines += ['', f"Agreement with mmdet's DETR (same weights): logits within "
              f"{agree['logits']:.1e} (relative), boxes within {agree['boxes']:.1e}, losses "
              f"within {agree['losses']:.1e}; identical assignments in every matching row: "
              f"{all(result['same_assignments']) if result['same_assignments'] else 'not run'}.",
              f"Kernels the plugin ran: {', '.join(f'{k}={v}' for k, v in result['accel'].items())}"
              f"; matching: {result.get('matching_kernels')}; oneDNN's linear layers measured at "
              f"{machine['onednn_linear_speedup']:.2f}x MKL's rate; OpenMP wait policy "
              f"{machine.get('omp_wait_policy')}; torch {machine['torch']}.", '']
    return lines


def onnx_table(result: dict) -> List[str]:
    """The ONNX Runtime rows of one file (or [] when it has none)."""
    entries = result.get('onnxruntime') or []
    if not entries:
        return []
    args, machine = result['args'], result['machine']
    lines = ['', f"Inference, R{args['depth']}, {machine['cpu_model']}, "
             f"{machine['torch_threads']} threads (ONNX Runtime as many), fp32; the plugin's "
             f"model exported with dynamic shapes (same weights); median of {args['iters']} "
             f"runs after {args['warmup']} warm-up, in alternation:", '',
             '| batch x size | plugin PyTorch | mmdet PyTorch | ONNX Runtime | vs mmdet | '
             'vs plugin |', '|---|---|---|---|---|---|']
    for e in entries:
        lines.append(f"| {e['batch']} x {e['size'][0]}x{e['size'][1]} | {ms(e['plugin_ms'])} | "
                     f"{ms(e['mmdet_ms'])} | {ms(e['onnxruntime_ms'])} | "
                     f"{ratio(e['vs_mmdet'])} | {ratio(e['vs_plugin'])} |")
    worst = max(max(e['parity'].values()) for e in entries)
    lines += ['', f'ONNX Runtime against the plugin\'s PyTorch predictions on these images: '
              f'scores and boxes within {worst:.1e} (boxes in pixels). Source: '
              f"`{osp.basename(result['path'])}`."]
    return lines


def kernels_table(default: dict, reference: dict) -> List[str]:
    ref = {row['key']: row for row in reference['rows']}
    lines = [f"### What the kernels are worth: {default['machine']['cpu_model']}", '',
             f"`{osp.basename(default['path'])}` against `{osp.basename(reference['path'])}` "
             '(the plain computation); each ratio is reference time / default time, each '
             'side against mmdet in its own run.', '',
             '| row | plugin, default | plugin, reference | default vs reference | '
             'default vs mmdet | reference vs mmdet |', '|---|---|---|---|---|---|']
    for row in default['rows']:
        other = ref.get(row['key'])
        if other is None:
            continue
        lines.append(f"| {ROW_NAMES.get(row['key'], row['row'])} | {ms(row['plugin_ms'])} | "
                     f"{ms(other['plugin_ms'])} | {other['plugin_ms'] / row['plugin_ms']:.2f}x | "
                     f"{ratio(row['speedup'])} | {ratio(other['speedup'])} |")
    return lines + ['']


def ablation_table(default: dict, variants: List[dict]) -> List[str]:
    """Default against runs that change one kernel (``--accel '{"dropout": "torch"}'``).

    Each run times mmdet's DETR in alternation with the plugin, so the drift
    of the machine between runs cancels in the ratio to mmdet; what a kernel
    is worth is the default's ratio over the ratio without it."""
    keys = [row['key'] for row in default['rows'] if not row['key'].startswith('matching')]
    base = {row['key']: row['speedup'] for row in default['rows']}
    lines = [f"### One kernel changed at a time: {default['machine']['cpu_model']}", '',
             'Each cell: the plugin\'s speed-up over mmdet with that setting, in its own run, and '
             'in brackets what the default gains from the change (the default\'s speed-up over '
             'this one: above 1, the default\'s kernel pays here). The default run: ' +
             ', '.join(f'{ROW_NAMES[k].split(" (")[0]} {base[k]:.2f}x' for k in keys) + '. '
             'Runs move by about 10% from one to the next: read small differences as noise.', '',
             '| `--accel` | ' + ' | '.join(ROW_NAMES[k].split(' (')[0] for k in keys) + ' |',
             '|---|' + '---|' * len(keys)]
    for result in variants:
        speedups = {row['key']: row['speedup'] for row in result['rows']}
        cells = [f'{speedups[k]:.2f}x ({base[k] / speedups[k]:.2f}x)' if k in speedups else '—'
                 for k in keys]
        lines.append(f"| `{result['args']['accel']}` | " + ' | '.join(cells) + ' |')
    return lines + ['']


def readme_table(result: dict) -> List[str]:
    args, machine = result['args'], result['machine']
    lines = [MARK_BEGIN, '', f"{machine['cpu_model']}, {machine['torch_threads']} threads; "
             f"R{args['depth']}, batch {args['batch_size']}, "
             f"{args['img_size']}x{args['img_size']}, {args['dtype']}, `--accel {args['accel']}` "
             '([method and all results](docs/benchmark.md)):', '',
             '| row | plugin | mmdet DETR | vs mmdet |', '|---|---|---|---|']
    for row in result['rows']:
        lines.append(f"| {ROW_NAMES.get(row['key'], row['row'])} | {ms(row['plugin_ms'])} | "
                     f"{ms(row['mmdet_ms'])} | {ratio(row['speedup'])} |")
    entries = {e['impl']: e for e in result.get('together', [])}
    if {'plugin', 'mmdet'} <= set(entries):
        plugin = statistics.median(entries['plugin']['pair_s'])
        mmdet = statistics.median(entries['mmdet']['pair_s'])
        lines.append(f'| train step, two processes at once | {plugin * 1e3:.0f} ms | '
                     f'{mmdet * 1e3:.0f} ms | {mmdet / plugin:.2f}x |')
    return lines + ['', MARK_END]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('results', nargs='+', help='JSON files of benchmark_vs_mmdet.py --json')
    parser.add_argument('--out', required=True, help='the markdown page to write')
    parser.add_argument('--header', help='a markdown file to put above the results')
    parser.add_argument('--ablation', nargs='*', default=[],
                        help='a run with --accel default, then runs that change one kernel')
    parser.add_argument('--readme', help='rewrite the speed table of this README')
    parser.add_argument('--deployment',
                        help='rewrite the ONNX Runtime table of this page (between '
                        f'{ONNX_BEGIN} markers) from the files with ONNX Runtime rows')
    args = parser.parse_args()
    results = [load(path) for path in args.results]
    lines: List[str] = []
    if args.header:
        with open(args.header) as f:
            lines += f.read().rstrip().splitlines() + ['']
    by_machine: Dict[str, Dict[str, dict]] = {}
    for result in [r for r in results if r['rows']]:  # files of ONNX rows alone: not here
        by_machine.setdefault(result['machine']['cpu_model'], {})[result['args']['accel']] = result
    for runs in by_machine.values():
        if 'default' in runs and 'reference' in runs:
            lines += kernels_table(runs['default'], runs['reference'])
    if args.ablation:
        ablation = [load(path) for path in args.ablation]
        variants = sorted(ablation[1:], key=lambda r: (r['args']['accel'] == 'reference',
                                                       r['args']['accel']))
        lines += ablation_table(ablation[0], variants)
    for result in results:
        lines += section(result)
    with open(args.out, 'w') as f:
        f.write('\n'.join(lines).rstrip() + '\n')
    if args.readme:
        defaults = [r for r in results if r['args']['accel'] == 'default' and r['rows']]
        with open(args.readme) as f:
            text = f.read()
        begin, end = text.index(MARK_BEGIN), text.index(MARK_END) + len(MARK_END)
        text = text[:begin] + '\n'.join(readme_table(defaults[-1])) + text[end:]
        with open(args.readme, 'w') as f:
            f.write(text)
    if args.deployment:
        tables = [line for r in results for line in onnx_table(r)]
        if not tables:
            raise ValueError('--deployment: none of the files has ONNX Runtime rows '
                             '(benchmark_vs_mmdet.py without --skip onnxruntime, on the CPU)')
        with open(args.deployment) as f:
            text = f.read()
        begin, end = text.index(ONNX_BEGIN), text.index(ONNX_END)
        text = text[:begin + len(ONNX_BEGIN)] + '\n'.join(tables).rstrip() + '\n' + text[end:]
        with open(args.deployment, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()

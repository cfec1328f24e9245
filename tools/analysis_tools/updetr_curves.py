"""Collect the mAP curves of fine-tuning runs into a JSON file, a plot and
the table of ``docs/up_detr.md``.

    python tools/analysis_tools/updetr_curves.py \\
        --arm up-detr work_dirs/updetr_demo/finetune/updetr_seed* \\
        --arm scratch work_dirs/updetr_demo/finetune/scratch_seed* \\
        --json docs/up_detr/curves.json --plot docs/up_detr/curves.png \\
        --markdown docs/up_detr.md

Each run directory is a ``tools/train.py --work-dir``; its validation
results are read from ``*/vis_data/scalars.json`` (mmengine's log of
scalars: ``coco/bbox_mAP`` and ``coco/bbox_mAP_50`` at each validation
step). ``--markdown`` rewrites the table between the file's
``<!-- updetr-curves -->`` markers (``--marker`` names others): per step,
each arm's mean and sample standard deviation over its runs and every run's
value.
"""
import argparse
import glob
import json
import os.path as osp
import statistics
from typing import Dict, List

DEFAULT_MARKER = 'updetr-curves'
METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50')


def read_run(work_dir: str) -> Dict[int, Dict[str, float]]:
    """{step: {metric: value}} of the newest log of a run directory."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        raise FileNotFoundError(f'{work_dir}: no */vis_data/scalars.json (not a tools/train.py '
                                'work dir, or the run has not validated yet)')
    out: Dict[int, Dict[str, float]] = {}
    with open(logs[-1]) as f:
        for line in f:
            record = json.loads(line)
            if METRICS[0] in record:
                step = int(record['step'])
                if step in out:
                    raise ValueError(
                        f'{logs[-1]}: two validations logged at step {step}; an '
                        'iteration-based run must log them at their iteration '
                        '(default_hooks.logger.log_metric_by_epoch=False)')
                out[step] = {m: float(record[m]) for m in METRICS if m in record}
    if not out:
        raise ValueError(f'{logs[-1]}: no {METRICS[0]} recorded')
    return out


def summarise(arms: Dict[str, Dict[str, Dict[int, Dict[str, float]]]]) -> dict:
    """Per arm and step: mean, std and values of each metric over the runs
    that reached the step."""
    summary = {}
    for arm, runs in arms.items():
        steps = sorted({s for run in runs.values() for s in run})
        rows = []
        for step in steps:
            row = dict(step=step)
            for metric in METRICS:
                values = [run[step][metric] for run in runs.values()
                          if step in run and metric in run[step]]
                row[metric] = dict(
                    mean=statistics.fmean(values) if values else None,
                    std=statistics.stdev(values) if len(values) > 1 else 0.0,
                    values=values)
            rows.append(row)
        summary[arm] = rows
    return summary


def markdown(summary: dict, runs: Dict[str, List[str]]) -> str:
    arms = list(summary)
    lines = ['bbox mAP on the val split (mean ± sample std over the runs; each run in brackets). '
             'Runs: ' + '; '.join(f'{a}: {len(runs[a])}' for a in arms) + '.', '',
             '| step | ' + ' | '.join(arms) + ' |',
             '|---:|' + '---|' * len(arms)]
    steps = sorted({r['step'] for a in arms for r in summary[a]})
    by_step = {a: {r['step']: r for r in summary[a]} for a in arms}
    for step in steps:
        cells = []
        for a in arms:
            r = by_step[a].get(step)
            m = r and r[METRICS[0]]
            if not m or m['mean'] is None:
                cells.append('—')
                continue
            if len(m['values']) == 1:  # one run: its value, no spread
                cells.append(f"{m['mean']:.3f}")
                continue
            each = ', '.join(f'{v:.3f}' for v in m['values'])
            cells.append(f"{m['mean']:.3f} ± {m['std']:.3f} ({each})")
        lines.append(f'| {step} | ' + ' | '.join(cells) + ' |')
    lines.append('')
    last = {a: summary[a][-1][METRICS[1]] for a in arms if summary[a]}
    lines.append('bbox mAP@0.5 at the last step: ' + '; '.join(
        f"{a} {m['mean']:.3f}" + (f" ± {m['std']:.3f}" if len(m['values']) > 1 else '')
        for a, m in last.items() if m['mean'] is not None) + '.')
    return '\n'.join(lines)


def plot(summary: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, METRICS):
        for arm, rows in summary.items():
            steps = [r['step'] for r in rows]
            mean = [r[metric]['mean'] for r in rows]
            std = [r[metric]['std'] for r in rows]
            line, = ax.plot(steps, mean, marker='o', label=arm)
            ax.fill_between(steps, [m - s for m, s in zip(mean, std)],
                            [m + s for m, s in zip(mean, std)], color=line.get_color(),
                            alpha=0.2)
            for i in range(max(len(r[metric]['values']) for r in rows)):
                ax.plot([r['step'] for r in rows if len(r[metric]['values']) > i],
                        [r[metric]['values'][i] for r in rows if len(r[metric]['values']) > i],
                        color=line.get_color(), alpha=0.35, linewidth=0.8)
        ax.set_xlabel('fine-tuning step')
        ax.set_ylabel(metric.split('/')[1])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arm', nargs='+', action='append', required=True,
                        metavar=('NAME', 'WORK_DIR'), help='an arm: its name, then its runs')
    parser.add_argument('--json', help='write the curves here')
    parser.add_argument('--plot', help='write the plot here (PNG)')
    parser.add_argument('--markdown', help='rewrite the table between the markers of this file')
    parser.add_argument('--marker', default=DEFAULT_MARKER,
                        help=f'the markers: <!-- MARKER --> ... <!-- /MARKER --> '
                        f'(default {DEFAULT_MARKER})')
    args = parser.parse_args()
    arms, runs = {}, {}
    for name, *dirs in args.arm:
        if not dirs:
            parser.error(f'--arm {name}: no run directory')
        runs[name] = dirs
        arms[name] = {d: read_run(d) for d in dirs}
    summary = summarise(arms)
    table = markdown(summary, runs)
    print(table)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(metrics=list(METRICS), runs=runs,
                           curves={a: {d: {str(s): v for s, v in r.items()}
                                       for d, r in arms[a].items()} for a in arms},
                           summary=summary), f, indent=1)
    if args.plot:
        plot(summary, args.plot)
    if args.markdown:
        mark_begin, mark_end = f'<!-- {args.marker} -->', f'<!-- /{args.marker} -->'
        with open(args.markdown) as f:
            text = f.read()
        if mark_begin not in text or mark_end not in text:
            raise SystemExit(f'{args.markdown}: no {mark_begin} ... {mark_end} markers')
        head, rest = text.split(mark_begin, 1)
        tail = rest.split(mark_end, 1)[1]
        with open(args.markdown, 'w') as f:
            f.write(f'{head}{mark_begin}\n{table}\n{mark_end}{tail}')


if __name__ == '__main__':
    main()

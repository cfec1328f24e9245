"""Tabulate training runs of one recipe with different seeds: the COCO bbox
mAP at each validation, the final mAP and AP50, their mean, spread and
minimum.

    python tools/analysis_tools/seed_summary.py seed0=work_dirs/a seed1=work_dirs/b ... \\
        [--json OUT.json] [--doc docs/denoising.md --marker dn-seeds] [--target 0.65 --floor 0.55]

Each run is a work directory of ``tools/train.py`` (or a variant directory of
``ablation.py``); its newest ``vis_data/scalars.json`` with validation
results is read. ``--doc`` replaces the text between ``<!-- MARKER -->`` and
``<!-- /MARKER -->`` in that file by the table, so the docs are regenerated
from the runs rather than copied by hand. ``--target`` / ``--floor`` add a
line saying whether the mean reaches the target and every run the floor.
"""
import argparse
import glob
import json
import os.path as osp
import re
import statistics
from typing import Dict, List


def read_run(work_dir: str) -> Dict:
    """The validation curve of the newest run under ``work_dir``:
    ``steps``, ``mAP``, ``AP50`` (lists) and the final values."""
    pattern = osp.join(work_dir, '**', 'vis_data', 'scalars.json')
    candidates = sorted(glob.glob(pattern, recursive=True))
    for path in reversed(candidates):
        rows = []
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if 'coco/bbox_mAP' in entry:
                    rows.append(entry)
        if rows:
            return dict(source=path, steps=[r['step'] for r in rows],
                        mAP=[r['coco/bbox_mAP'] for r in rows],
                        AP50=[r['coco/bbox_mAP_50'] for r in rows],
                        final_mAP=rows[-1]['coco/bbox_mAP'],
                        final_AP50=rows[-1]['coco/bbox_mAP_50'])
    raise SystemExit(f'{work_dir}: no scalars.json with coco/bbox_mAP under it (did the run '
                     'validate?)')


def summarise(runs: Dict[str, Dict], target: float = None, floor: float = None) -> Dict:
    finals = [r['final_mAP'] for r in runs.values()]
    summary = dict(runs=runs, mean=statistics.mean(finals), min=min(finals), max=max(finals),
                   std=statistics.stdev(finals) if len(finals) > 1 else 0.0)
    if target is not None:
        summary['target'] = target
        summary['meets_target'] = summary['mean'] >= target
    if floor is not None:
        summary['floor'] = floor
        summary['meets_floor'] = summary['min'] >= floor
    return summary


def table(summary: Dict) -> str:
    runs = summary['runs']
    steps = next(iter(runs.values()))['steps']
    head = '| run | ' + ' | '.join(f'mAP @ {s}' for s in steps) + ' | final AP50 |'
    lines = [head, '|' + '---|' * (len(steps) + 2)]
    for name, run in runs.items():
        values = [f'{v:.3f}' for v in run['mAP']]
        values[-1] = f'**{values[-1]}**'
        lines.append(f'| {name} | ' + ' | '.join(values) + f' | {run["final_AP50"]:.3f} |')
    lines.append('')
    lines.append(f'Final mAP over {len(runs)} runs: mean **{summary["mean"]:.3f}** '
                 f'(sd {summary["std"]:.3f}), min {summary["min"]:.3f}, max {summary["max"]:.3f}.')
    if 'target' in summary:
        verdicts = [f'mean >= {summary["target"]}: {"yes" if summary["meets_target"] else "no"}']
        if 'floor' in summary:
            verdicts.append(f'every run >= {summary["floor"]}: '
                            f'{"yes" if summary["meets_floor"] else "no"}')
        lines.append('Target: ' + '; '.join(verdicts) + '.')
    return '\n'.join(lines)


def insert(doc: str, marker: str, text: str) -> None:
    """Replace what lies between ``<!-- marker -->`` and ``<!-- /marker -->``."""
    with open(doc) as f:
        content = f.read()
    pattern = re.compile(rf'(<!-- {re.escape(marker)} -->\n).*?(<!-- /{re.escape(marker)} -->)',
                         re.S)
    if not pattern.search(content):
        raise SystemExit(f'{doc}: no <!-- {marker} --> ... <!-- /{marker} --> block')
    content = pattern.sub(lambda m: m.group(1) + text + '\n' + m.group(2), content)
    with open(doc, 'w') as f:
        f.write(content)


def parse_args(argv: List[str] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', help='NAME=WORK_DIR')
    parser.add_argument('--json', help='write the summary here')
    parser.add_argument('--doc', help='markdown file to update')
    parser.add_argument('--marker', default='seeds')
    parser.add_argument('--target', type=float, default=None)
    parser.add_argument('--floor', type=float, default=None)
    return parser.parse_args(argv)


def main(argv: List[str] = None) -> Dict:
    args = parse_args(argv)
    runs = {}
    for item in args.runs:
        name, sep, work_dir = item.partition('=')
        if not sep:
            raise SystemExit(f'{item!r}: give each run as NAME=WORK_DIR')
        runs[name] = read_run(work_dir)
    summary = summarise(runs, args.target, args.floor)
    text = table(summary)
    print(text)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=1)
    if args.doc:
        insert(args.doc, args.marker, text)
    return summary


if __name__ == '__main__':
    main()

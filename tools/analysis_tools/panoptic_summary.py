"""Compare panoptic evaluations: one row per ``tools/test.py`` run.

    python tools/analysis_tools/panoptic_summary.py \
        --run "mask head" work_dirs/panoptic_demo/test_masks \
        --run "boxes as masks" work_dirs/panoptic_demo/test_boxes \
        [--json summary.json] [--markdown docs/panoptic.md] [--extra KEY=VALUE ...]

Each DIR is a ``tools/test.py --work-dir``; the metrics of its newest run
(``DIR/<timestamp>/<timestamp>.json``, written by mmengine) are read:
mmdet's ``CocoPanopticMetric`` (PQ, SQ, RQ over all classes, things and
stuff, in %) and, when present, ``CocoMetric``'s box and mask mAP of the
things. ``--markdown`` replaces the table between the file's
``<!-- panoptic-summary -->`` markers (the docs are regenerated, not edited).
"""
import argparse
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

COLUMNS = [  # (key in mmengine's metrics json, header)
    ('coco_panoptic/PQ', 'PQ'), ('coco_panoptic/SQ', 'SQ'), ('coco_panoptic/RQ', 'RQ'),
    ('coco_panoptic/PQ_th', 'PQ things'), ('coco_panoptic/PQ_st', 'PQ stuff'),
    ('coco/bbox_mAP', 'box mAP'), ('coco/segm_mAP', 'mask mAP'),
]
MARKER = '<!-- panoptic-summary -->'


def newest_metrics(work_dir: str) -> Dict[str, float]:
    """The metrics of the newest ``tools/test.py`` run in ``work_dir``."""
    files = sorted(f for f in glob.glob(osp.join(work_dir, '*', '*.json'))
                   if osp.basename(f)[:-5] == osp.basename(osp.dirname(f)))
    if not files:
        raise FileNotFoundError(f'no tools/test.py metrics (<timestamp>/<timestamp>.json) '
                                f'in {work_dir}')
    with open(files[-1]) as f:
        metrics = json.load(f)
    if 'coco_panoptic/PQ' not in metrics:
        raise KeyError(f'{files[-1]} has no coco_panoptic/PQ: was the run evaluated with '
                       'CocoPanopticMetric?')
    return metrics


def table(rows: Sequence[dict]) -> str:
    """Markdown table: run name, then the :data:`COLUMNS` present in any row."""
    present = [(k, h) for k, h in COLUMNS if any(k in r['metrics'] for r in rows)]
    lines = ['| run | ' + ' | '.join(h for _, h in present) + ' |',
             '|---|' + '---:|' * len(present)]
    for r in rows:
        cells = []
        for key, _ in present:
            value = r['metrics'].get(key)
            if value is None:
                cells.append('')
            else:  # PQ columns are in %, CocoMetric's in [0, 1]
                cells.append(f'{value:.1f}' if key.startswith('coco_panoptic') else
                             f'{value:.3f}')
        lines.append(f'| {r["name"]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def replace_between_markers(path: str, text: str) -> None:
    with open(path) as f:
        content = f.read()
    parts = content.split(MARKER)
    if len(parts) != 3:
        raise ValueError(f'{path} needs exactly two {MARKER} lines around the table')
    with open(path, 'w') as f:
        f.write(parts[0] + MARKER + '\n' + text + '\n' + MARKER + parts[2])


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--run', nargs=2, action='append', metavar=('NAME', 'DIR'),
                        required=True, help='a name and a tools/test.py --work-dir')
    parser.add_argument('--json', help='write the rows here')
    parser.add_argument('--markdown', help='replace the table between markers in this file')
    parser.add_argument('--extra', nargs='*', default=[], metavar='KEY=VALUE',
                        help='facts stored with the rows in --json (e.g. training minutes)')
    args = parser.parse_args(argv)
    bad = [item for item in args.extra if '=' not in item]
    if bad:
        parser.error(f'--extra takes KEY=VALUE pairs, got {" ".join(bad)}')
    rows = [dict(name=name, work_dir=d, metrics=newest_metrics(d)) for name, d in args.run]
    text = table(rows)
    print(text)
    if args.json:
        extra = dict(item.split('=', 1) for item in args.extra)
        with open(args.json, 'w') as f:
            json.dump(dict(rows=rows, **extra), f, indent=1)
    if args.markdown:
        replace_between_markers(args.markdown, text)


if __name__ == '__main__':
    main()

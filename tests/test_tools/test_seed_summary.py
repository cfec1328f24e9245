"""tools/analysis_tools/seed_summary.py on hand-made run logs."""
import json
import os
import os.path as osp
import sys

import pytest

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import seed_summary  # noqa: E402


def fake_run(root, name, maps, stamp='20260101_000000'):
    vis = osp.join(root, name, stamp, 'vis_data')
    os.makedirs(vis)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        f.write(json.dumps(dict(loss=1.0, step=50)) + '\n')
        for i, m in enumerate(maps):
            f.write(json.dumps({'coco/bbox_mAP': m, 'coco/bbox_mAP_50': m + 0.2,
                                'step': 700 * (i + 1)}) + '\n')
    return osp.join(root, name)


def test_table_mean_min_and_doc_block(tmp_path):
    a = fake_run(str(tmp_path), 'a', [0.1, 0.7])
    b = fake_run(str(tmp_path), 'b', [0.2, 0.5])
    # an older, interrupted run of b without validation is passed over
    os.makedirs(osp.join(b, '20250101_000000', 'vis_data'))
    with open(osp.join(b, '20250101_000000', 'vis_data', 'scalars.json'), 'w') as f:
        f.write(json.dumps(dict(loss=1.0, step=50)) + '\n')
    doc = tmp_path / 'doc.md'
    doc.write_text('head\n<!-- s -->\nold\n<!-- /s -->\ntail\n')
    out = tmp_path / 'out.json'
    summary = seed_summary.main([f'seed0={a}', f'seed1={b}', '--json', str(out), '--doc',
                                 str(doc), '--marker', 's', '--target', '0.65',
                                 '--floor', '0.55'])
    assert summary['mean'] == pytest.approx(0.6)
    assert summary['min'] == pytest.approx(0.5)
    assert not summary['meets_target'] and not summary['meets_floor']
    text = doc.read_text()
    assert text.startswith('head\n<!-- s -->\n| run | mAP @ 700 | mAP @ 1400 |')
    assert '| seed1 | 0.200 | **0.500** | 0.700 |' in text
    assert 'old' not in text and text.endswith('<!-- /s -->\ntail\n')
    assert json.loads(out.read_text())['runs']['seed0']['steps'] == [700, 1400]


def test_run_without_validation_is_one_clear_error(tmp_path):
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(SystemExit, match='no scalars.json with coco/bbox_mAP'):
        seed_summary.main([f'x={tmp_path / "empty"}'])
    with pytest.raises(SystemExit, match='NAME=WORK_DIR'):
        seed_summary.main([str(tmp_path)])

"""The Pascal VOC data path end to end: tools/train.py and tools/test.py on the toy VOC config
over a tiny generated VOC set, scored by VOCMetric (slow: two tool runs, 40-80 s)."""
import glob
import json
import os.path as osp
import pickle

import pytest

from mmdet_detr_plugin.datasets import make_toy_voc
from test_train_test_resume import FAST, REPO, run_tool, scalars

CONFIG = osp.join(REPO, 'configs', 'detr_r18_toy-voc0712.py')
VOC_KEYS = ['pascal_voc/mAP'] + [f'pascal_voc/AP{t}' for t in range(50, 100, 5)]


@pytest.mark.slow
def test_train_then_test_the_toy_voc_config(tmp_path):
    info = make_toy_voc(str(tmp_path / 'toy_voc'), num_train=16, num_val=8, img_size=96, seed=0)
    root = info['out_dir'] + '/'
    work = str(tmp_path / 'work')
    opts = ['--cfg-options', f'data_root={root}', 'train_cfg.max_iters=4',
            'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=4', *FAST]
    run_tool('tools/train.py', CONFIG, '--work-dir', work, *opts)
    rows = scalars(work)
    assert [row['iter'] for row in rows if 'loss' in row] == [1, 2, 3, 4]
    val = [row for row in rows if 'pascal_voc/mAP' in row]
    assert len(val) == 1 and set(VOC_KEYS) <= set(val[0])
    # VOCMetric's mAP is the mean of its ten thresholds' APs (each rounded to 3 places)
    aps = [val[0][k] for k in VOC_KEYS[1:]]
    assert val[0]['pascal_voc/mAP'] == pytest.approx(sum(aps) / 10, abs=1e-3)
    assert all(0.0 <= ap <= 1.0 for ap in aps)

    # tools/test.py on the checkpoint: the same figures as the validation after step 4
    pkl = str(tmp_path / 'results.pkl')
    run_tool('tools/test.py', CONFIG, osp.join(work, 'iter_4.pth'), '--work-dir',
             str(tmp_path / 'test'), '--out', pkl, '--cfg-options', f'data_root={root}', *FAST)
    # mmengine writes the test metrics to <work dir>/<timestamp>/<timestamp>.json
    [metrics_file] = glob.glob(str(tmp_path / 'test' / '*' / '*.json'))
    with open(metrics_file) as f:
        tested = json.load(f)
    for key in VOC_KEYS:
        assert tested[key] == pytest.approx(val[0][key], abs=1e-9), key
    with open(pkl, 'rb') as f:
        predictions = pickle.load(f)
    assert sorted(p['img_id'] for p in predictions) == info['subsets']['VOC2007/test']['ids']
    assert all(len(p['pred_instances']['bboxes']) == 10 for p in predictions)  # max_per_img

"""tools/train.py and tools/test.py, run as a user runs them, on a toy set."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(REPO, 'configs', 'detr_r18_toy.py')

# a small, quick version of the toy config
FAST = ['train_dataloader.batch_size=4', 'val_dataloader.batch_size=4',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1', 'randomness.seed=0']


def run_tool(*args, env=None):
    cmd = [sys.executable, *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed:\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    from mmdet_detr_plugin.datasets import make_toy_coco
    root = tmp_path_factory.mktemp('toy')
    make_toy_coco(str(root), num_train=16, num_val=8, img_size=96, seed=0)
    return str(root) + '/'


def scalars(work_dir):
    """Every line of mmengine's scalars.json logs under work_dir, oldest run
    first (each run logs into a folder named by its start time)."""
    rows = []
    for dirpath, _, files in sorted(os.walk(work_dir)):
        if 'scalars.json' in files:
            with open(osp.join(dirpath, 'scalars.json')) as f:
                rows += [json.loads(line) for line in f]
    return rows


def test_train_evaluate_resume_and_test(toy_root, tmp_path):
    work = str(tmp_path / 'work')
    opts = ['--cfg-options', f'data_root={toy_root}', 'train_cfg.max_iters=4',
            'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=2',
            'default_hooks.checkpoint.max_keep_ckpts=-1', *FAST]
    out = run_tool('tools/train.py', CONFIG, '--work-dir', work, *opts)
    assert osp.isfile(osp.join(work, 'iter_4.pth'))
    assert 'coco/bbox_mAP' in out  # validation ran CocoMetric

    # --resume (latest checkpoint in the work dir) continues at iteration 5
    opts_more = [o.replace('max_iters=4', 'max_iters=6') for o in opts]
    out = run_tool('tools/train.py', CONFIG, '--work-dir', work, '--resume', *opts_more)
    assert 'resumed epoch: 0, iter: 4' in out
    iters = [row['iter'] for row in scalars(work) if 'loss' in row]
    assert iters[-2:] == [5, 6]

    # --resume CKPT from an explicit checkpoint
    out = run_tool('tools/train.py', CONFIG, '--work-dir', work, '--resume',
                   osp.join(work, 'iter_2.pth'), *opts)
    assert 'resumed epoch: 0, iter: 2' in out

    # load_from (weights only, training restarts at iteration 1)
    out = run_tool('tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'finetune'),
                   *opts[:-len(FAST)], f'load_from={osp.join(work, "iter_4.pth")}',
                   'train_cfg.max_iters=1', *FAST)
    assert 'Load checkpoint from' in out

    # tools/test.py: COCO evaluation, dumped predictions and drawn pictures
    pkl = str(tmp_path / 'results.pkl')
    out = run_tool('tools/test.py', CONFIG, osp.join(work, 'iter_6.pth'), '--work-dir', work,
                   '--out', pkl, '--show-dir', 'painted', '--cfg-options',
                   f'data_root={toy_root}', *FAST)
    assert 'coco/bbox_mAP_50' in out
    assert osp.isfile(pkl)
    painted = [f for d, _, fs in os.walk(work) if d.endswith('painted') for f in fs]
    assert len(painted) == 8


def test_missing_config_and_checkpoint_errors(tmp_path):
    proc = subprocess.run([sys.executable, 'tools/train.py', 'configs/no_such.py'], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and 'config file not found: configs/no_such.py' in proc.stderr
    proc = subprocess.run([sys.executable, 'tools/test.py', CONFIG, 'missing.pth'], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and 'checkpoint not found: missing.pth' in proc.stderr


def test_amp_trains_without_nan(toy_root, tmp_path):  # noqa: F811
    """--amp: bfloat16 autocast on the CPU (fp16 + loss scaling on CUDA)."""
    work = str(tmp_path / 'amp')
    out = run_tool('tools/train.py', CONFIG, '--work-dir', work, '--amp', '--cfg-options',
                   f'data_root={toy_root}', 'train_cfg.max_iters=3', 'train_cfg.val_interval=3',
                   *FAST)
    assert 'PluginAmpOptimWrapper' in out or 'AmpOptimWrapper' in out
    rows = [row for row in scalars(work) if 'loss' in row]
    assert [row['iter'] for row in rows] == [1, 2, 3]
    assert all(0 < row['loss'] < 1e4 for row in rows)  # finite, no NaN

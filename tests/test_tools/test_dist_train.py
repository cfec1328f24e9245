"""tools/dist_train.sh with 2 CPU processes (gloo) takes the same first step
as one process fed the same total batch.

Plain SGD (no momentum, no clipping) makes the weights after step 1 equal
``w0 - lr * grad``, so equal weights mean equal gradients, which hold only
if the loss normalisers (box count, cross-entropy weight sum, denoising
query count) are averaged over the processes.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import torch

from test_train_test_resume import CONFIG, FAST, REPO, run_tool, toy_root  # noqa: F401

STEP = ['train_cfg.max_iters=1', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=1', 'optim_wrapper.optimizer.type=SGD',
        'optim_wrapper.optimizer.lr=0.5', 'optim_wrapper.optimizer.weight_decay=0.0',
        'optim_wrapper.clip_grad=None', 'param_scheduler=None',
        'train_dataloader.dataset.pipeline.3.prob=0.0',  # no random flip
        'model.backbone.norm_eval=True',  # batch statistics would differ per process
        # no random noise in the denoising queries (each process draws its own), and
        # their padding slots hidden (each process pads to its own images' most boxes)
        'model.queries.label_noise=0.0', 'model.queries.box_noise=0.0',
        'model.queries.hide_padding=True',
        ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process(toy_root, tmp_path):  # noqa: F811
    fast = [o for o in FAST if not o.startswith('train_dataloader.batch_size')]
    single = str(tmp_path / 'single')
    run_tool('tools/train.py', CONFIG, '--work-dir', single, '--cfg-options',
             f'data_root={toy_root}', 'train_dataloader.batch_size=4', *STEP, *fast)

    double = str(tmp_path / 'double')
    env = {**os.environ, 'PORT': str(free_port()), 'PYTHON': sys.executable,
           'OMP_NUM_THREADS': '1'}
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', double, '--cfg-options',
         f'data_root={toy_root}', 'train_dataloader.batch_size=2', *STEP, *fast],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    a = torch.load(osp.join(single, 'iter_1.pth'), map_location='cpu')['state_dict']
    b = torch.load(osp.join(double, 'iter_1.pth'), map_location='cpu')['state_dict']
    assert a.keys() == b.keys()
    moved = 0
    for key in a:
        if a[key].is_floating_point():
            assert torch.allclose(a[key], b[key], atol=2e-5, rtol=1e-4), key
            moved += 1
    assert moved > 50

    # not vacuous: one process seeing only half of the batch ends elsewhere
    half = str(tmp_path / 'half')
    run_tool('tools/train.py', CONFIG, '--work-dir', half, '--cfg-options',
             f'data_root={toy_root}', 'train_dataloader.batch_size=2', *STEP, *fast)
    c = torch.load(osp.join(half, 'iter_1.pth'), map_location='cpu')['state_dict']
    assert not torch.allclose(a['bbox_head.fc_cls.weight'], c['bbox_head.fc_cls.weight'],
                              atol=2e-5, rtol=1e-4)

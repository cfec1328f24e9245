"""Bad input and hard kills, through the tools as a user runs them."""
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest

from mmdet_detr_plugin.utils.resume import find_resumable_checkpoint, is_complete_checkpoint

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'test_tools'))
from test_train_test_resume import CONFIG, FAST, REPO, scalars, toy_root  # noqa: E402,F401

PY = sys.executable


def run(*args, timeout=600):
    return subprocess.run([PY, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def copy_toy(src, dst):
    shutil.copytree(src, dst)
    return str(dst) + '/'


def test_config_without_custom_imports_says_how_to_load(tmp_path):
    cfg = tmp_path / 'no_import.py'
    cfg.write_text(f"_base_ = '{CONFIG}'\ncustom_imports = None\n")
    proc = run('tools/train.py', str(cfg))
    assert proc.returncode != 0
    assert "custom_imports = dict(imports=['mmdet_detr_plugin']" in proc.stderr
    assert 'PluginDETR' in proc.stderr


def test_missing_annotation_file_names_key_and_path(toy_root, tmp_path):  # noqa: F811
    root = copy_toy(toy_root, tmp_path / 'toy')
    os.remove(osp.join(root, 'annotations', 'train.json'))
    proc = run('tools/train.py', CONFIG, '--cfg-options', f'data_root={root}')
    assert proc.returncode != 0
    assert 'train_dataloader.dataset.ann_file: annotation file not found' in proc.stderr
    assert osp.join(root, 'annotations/train.json') in proc.stderr


def test_corrupt_annotation_file_is_named(toy_root, tmp_path):  # noqa: F811
    root = copy_toy(toy_root, tmp_path / 'toy')
    with open(osp.join(root, 'annotations', 'train.json'), 'w') as f:
        f.write('{"images": [')  # cut short
    proc = run('tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
               f'data_root={root}', *FAST)
    assert proc.returncode != 0
    assert (f'train_dataloader.dataset.ann_file: {root}annotations/train.json is not valid '
            'JSON') in proc.stderr


def test_missing_image_file_is_named(toy_root, tmp_path):  # noqa: F811
    root = copy_toy(toy_root, tmp_path / 'toy')
    with open(osp.join(root, 'annotations', 'train.json')) as f:
        first = json.load(f)['images'][0]['file_name']
    os.remove(osp.join(root, 'train', first))
    proc = run('tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
               f'data_root={root}', 'train_cfg.max_iters=4', 'train_dataloader.batch_size=16',
               *[o for o in FAST if 'train_dataloader.batch_size' not in o])
    assert proc.returncode != 0
    assert f'No such file or directory: \'{root}train/{first}\'' in proc.stderr


def test_num_classes_smaller_than_the_data_set(toy_root):  # noqa: F811
    proc = run('tools/train.py', CONFIG, '--cfg-options', f'data_root={toy_root}',
               'model.bbox_head.num_classes=2')
    assert proc.returncode != 0
    assert ('model.bbox_head.num_classes=2 but train_dataloader.dataset has 4 classes'
            in proc.stderr)


def test_truncated_checkpoint_is_never_picked(tmp_path):
    good = tmp_path / 'iter_2.pth'
    import torch
    torch.save({'state_dict': {'w': torch.ones(1000)}}, good)
    data = good.read_bytes()
    (tmp_path / 'iter_4.pth').write_bytes(data[:len(data) // 2])  # killed mid-write
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    assert is_complete_checkpoint(str(good))
    assert not is_complete_checkpoint(str(tmp_path / 'iter_4.pth'))
    assert find_resumable_checkpoint(str(tmp_path)) == str(good)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_'))  # a cut pointer
    assert find_resumable_checkpoint(str(tmp_path)) == str(good)


def test_hard_kill_then_resume_gives_the_uninterrupted_losses(toy_root, tmp_path):  # noqa: F811
    # the denoising queries' noise draws from torch's generator, whose state mmengine's
    # checkpoints do not keep (nor does dropout's): without noise the losses are exact
    opts = ['--cfg-options', f'data_root={toy_root}', 'train_cfg.max_iters=8',
            'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=2',
            'default_hooks.checkpoint.max_keep_ckpts=-1', 'model.queries.label_noise=0.0',
            'model.queries.box_noise=0.0', *FAST]
    straight = str(tmp_path / 'straight')
    proc = run('tools/train.py', CONFIG, '--work-dir', straight, *opts)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = {row['iter']: row['loss'] for row in scalars(straight) if 'loss' in row}

    # run again, SIGKILL as soon as iteration 4's checkpoint is complete
    killed = str(tmp_path / 'killed')
    job = subprocess.Popen([PY, 'tools/train.py', CONFIG, '--work-dir', killed, *opts],
                           cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not is_complete_checkpoint(osp.join(killed, 'iter_4.pth')):
        assert job.poll() is None and time.time() < deadline, 'training ended before the kill'
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    # as if killed while writing the next checkpoint: a truncated file, and the
    # pointer naming it
    cut = osp.join(killed, 'iter_6.pth')
    data = open(osp.join(killed, 'iter_4.pth'), 'rb').read()
    with open(cut, 'wb') as f:
        f.write(data[:len(data) // 3])
    with open(osp.join(killed, 'last_checkpoint'), 'w') as f:
        f.write(cut)

    proc = run('tools/train.py', CONFIG, '--work-dir', killed, '--resume', *opts)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 4' in proc.stdout + proc.stderr
    resumed = {row['iter']: row['loss'] for row in scalars(killed) if 'loss' in row}
    for it in range(5, 9):
        assert resumed[it] == pytest.approx(expected[it], rel=1e-5, abs=1e-6), it

"""The README's analysis-tool commands (mmdet's tools on the plugin's config),
run as a user runs them, on the toy set and a checkpoint trained for 3 steps."""
import glob
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
from PIL import Image

from test_train_test_resume import CONFIG, FAST, run_tool, toy_root  # noqa: F401

DATA = ['test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']


@pytest.fixture(scope='module')
def trained(toy_root, tmp_path_factory):  # noqa: F811
    """Work dir of 3 training steps: (checkpoint, scalars.json)."""
    work = str(tmp_path_factory.mktemp('work'))
    run_tool('tools/train.py', CONFIG, '--work-dir', work, '--cfg-options',
             f'data_root={toy_root}', 'train_cfg.max_iters=3', 'train_cfg.val_interval=100',
             'default_hooks.checkpoint.interval=3', *FAST)
    scalars, = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    return osp.join(work, 'iter_3.pth'), scalars


def test_get_flops_counts_every_op_of_the_plugin(toy_root):  # noqa: F811
    out = run_tool('tools/analysis_tools/get_flops.py', CONFIG, '--num-images', '2',
                   '--cfg-options', f'data_root={toy_root}', *DATA)
    flops = float(re.search(r'Flops: ([\d.]+)G', out).group(1))
    params = float(re.search(r'Params: ([\d.]+)M', out).group(1))
    # the toy model: ResNet-18 (11.18 M, less its fc head) + projection + transformer + heads
    from mmengine.config import Config
    from mmdet.registry import MODELS
    model = MODELS.build(Config.fromfile(CONFIG).model)
    assert params == round(sum(p.numel() for p in model.parameters()) / 1e6, 3)
    assert flops > 0
    # the fused attention kernel has a flop rule (mmengine has none of its own)
    assert 'scaled_dot_product_attention' not in out


def test_benchmark_inference_fps_on_cpu(toy_root, trained):  # noqa: F811
    ckpt, _ = trained
    out = run_tool('tools/analysis_tools/benchmark.py', CONFIG, '--checkpoint', ckpt,
                   '--task', 'inference', '--max-iter', '6', '--log-interval', '3',
                   '--num-warmup', '2', '--cfg-options', f'data_root={toy_root}', *DATA)
    assert 'Done image [6  /6]' in out
    fps, ms = re.search(r'Overall fps: ([\d.]+) img/s, times per image: ([\d.]+) ms/img',
                        out).groups()
    assert float(fps) > 0 and float(ms) == pytest.approx(1000 / float(fps), rel=0.02, abs=0.1)


def test_analyze_logs_train_time_and_curve(trained, tmp_path):
    _, scalars = trained
    out = run_tool('tools/analysis_tools/analyze_logs.py', 'cal_train_time', scalars)
    with open(scalars) as f:
        train_times = [row['time'] for row in map(json.loads, f) if 'iter' in row]
    assert len(train_times) == 3
    # mmdet leaves out the first iteration as an outlier
    expected = np.mean(train_times[1:])
    assert f'average iter time: {expected:.4f} s/iter' in out

    curve = str(tmp_path / 'curve.png')
    run_tool('tools/analysis_tools/analyze_logs.py', 'plot_curve', scalars, '--keys', 'loss',
             'loss_cls', '--out', curve, env=dict(MPLBACKEND='Agg'))
    assert Image.open(curve).size[0] > 0


def test_browse_dataset_draws_every_training_image(toy_root, tmp_path):  # noqa: F811
    out_dir = str(tmp_path / 'browse')
    run_tool('tools/analysis_tools/browse_dataset.py', CONFIG, '--output-dir', out_dir,
             '--not-show', '--cfg-options', f'data_root={toy_root}',
             'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False')
    drawn = sorted(os.listdir(out_dir))
    assert len(drawn) == 16  # the toy set's training images
    # after the pipeline: the 96 px images resized to the config's 128 px scale
    assert Image.open(osp.join(out_dir, drawn[0])).size == (128, 128)

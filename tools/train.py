"""Train a detector with mmengine's Runner (MMDetection's command line).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

The plugin is loaded through the config's ``custom_imports``. The process's
OpenMP threads sleep when idle instead of spinning (``_openmp.py``: runs on a
shared machine stay fast) unless ``OMP_WAIT_POLICY`` says otherwise.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _openmp import passive_wait_policy  # noqa: E402

passive_wait_policy()  # before torch loads OpenMP

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate to the actual batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CKPT, or from the latest checkpoint in the work dir '
        'when no path is given')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, as key=value pairs '
        '(e.g. data_root=/data/coco/ train_dataloader.batch_size=4)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (or --local_rank)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(path: str, cfg_options: dict = None) -> Config:
    """Read a config, apply command-line overrides, and carry a changed
    ``data_root`` into the data sets."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    from mmdet_detr_plugin.utils.preflight import check_custom_imports, check_panopticapi
    check_custom_imports(cfg, path)
    if cfg_options:
        from mmdet_detr_plugin.utils.config import merge_options
        merge_options(cfg, cfg_options)
    check_panopticapi(cfg, path)
    return cfg


def set_work_dir(cfg: Config, config_path: str, work_dir: str = None) -> None:
    """work_dir: command line > config > ./work_dirs/CONFIG_NAME."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def build_runner(cfg: Config, launcher: str, stage: str) -> Runner:
    """Check the data sets, prepare CPU-only distributed runs, build the runner."""
    from mmdet_detr_plugin.utils.dist import setup_cpu_distributed
    from mmdet_detr_plugin.utils.preflight import check_datasets
    cfg.launcher = launcher
    check_datasets(cfg, stage)
    setup_cpu_distributed(cfg, launcher)
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def run_stage(cfg: Config, stage: str, run) -> None:
    """Run ``run()`` (the runner's train or test): a JSON error from a data
    set is re-raised naming its file, and a distributed run ends with its
    process group torn down."""
    from mmdet_detr_plugin.utils.dist import destroy_distributed
    from mmdet_detr_plugin.utils.preflight import name_corrupt_annotation
    try:
        run()
    except json.JSONDecodeError as err:
        name_corrupt_annotation(cfg, err, stage)
    destroy_distributed()


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    set_work_dir(cfg, args.config, args.work_dir)

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper in ('AmpOptimWrapper', 'PluginAmpOptimWrapper'):
            print('AMP training is already enabled in the config.')
        elif optim_wrapper != 'OptimWrapper':
            raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, got {optim_wrapper}')
        elif torch.cuda.is_available():
            cfg.optim_wrapper.type = 'AmpOptimWrapper'  # fp16 with dynamic loss scaling
            cfg.optim_wrapper.loss_scale = 'dynamic'
        else:  # mmengine's AmpOptimWrapper needs CUDA: bfloat16 autocast on the CPU
            cfg.optim_wrapper.type = 'PluginAmpOptimWrapper'

    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
                               'config')

    if args.resume == 'auto':
        # the newest complete checkpoint (mmengine would take a truncated one
        # left by a job killed while saving)
        from mmdet_detr_plugin.utils.resume import find_resumable_checkpoint
        cfg.resume = True
        cfg.load_from = find_resumable_checkpoint(cfg.work_dir)
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume checkpoint not found: {args.resume}')
        cfg.resume = True
        cfg.load_from = args.resume

    runner = build_runner(cfg, args.launcher, 'train')
    run_stage(cfg, 'train', runner.train)


if __name__ == '__main__':
    main()

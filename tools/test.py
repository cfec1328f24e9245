"""Evaluate a checkpoint with mmengine's Runner (MMDetection's command line).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl]
        [--show-dir DIR] [--show] [--wait-time S] [--cfg-options k=v ...]
        [--launcher none|pytorch|slurm|mpi] [--backend pytorch|onnxruntime]

With ``--backend onnxruntime`` CHECKPOINT is a model exported by
``tools/deployment/pytorch2onnx.py``: the config's data pipeline and
evaluator run as usual, and ONNX Runtime replaces the PyTorch model
(``PluginONNXRuntimeDetector``; ``--num-threads`` sets its threads).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _openmp import passive_wait_policy  # noqa: E402

passive_wait_policy()  # before torch loads OpenMP (see tools/_openmp.py)

from mmengine.config import DictAction  # noqa: E402
from mmengine.evaluator import DumpResults  # noqa: E402
from train import build_runner, load_config, run_stage, set_work_dir  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', type=str, help='dump predictions to a pickle file (.pkl)')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory (under the work dir) where painted '
                        'images are saved')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, as key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch',
                        help='run the PyTorch checkpoint, or an exported .onnx model with '
                        'ONNX Runtime')
    parser.add_argument('--num-threads', type=int, default=None,
                        help='ONNX Runtime\'s intra-op threads (--backend onnxruntime)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg, args) -> None:
    """Turn on mmdet's DetVisualizationHook for --show / --show-dir."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise RuntimeError('--show/--show-dir need default_hooks.visualization '
                           '(mmdet\'s DetVisualizationHook) in the config')
    hooks.visualization.draw = True
    if args.show:
        hooks.visualization.show = True
        hooks.visualization.wait_time = args.wait_time
    if args.show_dir:
        hooks.visualization.test_out_dir = args.show_dir


def use_onnxruntime(cfg, args) -> None:
    """Replace the config's model with the exported graph in ONNX Runtime."""
    if not args.checkpoint.endswith('.onnx'):
        raise ValueError(f'--backend onnxruntime takes an exported .onnx model, got '
                         f'{args.checkpoint} (export it with tools/deployment/pytorch2onnx.py)')
    if args.launcher != 'none':
        raise ValueError('--backend onnxruntime runs in one process (--launcher none)')
    from mmdet_detr_plugin.deploy import onnxruntime_model_cfg
    from mmdet_detr_plugin.deploy.onnxruntime import import_onnxruntime
    import_onnxruntime()
    cfg.model = onnxruntime_model_cfg(cfg.model, args.checkpoint, args.num_threads)
    cfg.load_from = None


def main() -> None:
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args.config, args.cfg_options)
    set_work_dir(cfg, args.config, args.work_dir)
    if args.backend == 'onnxruntime':
        use_onnxruntime(cfg, args)
    else:
        cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args)

    runner = build_runner(cfg, args.launcher, 'test')
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError('--out must end with .pkl or .pickle')
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    run_stage(cfg, 'test', runner.test)


if __name__ == '__main__':
    main()

"""Inference speed (FPS) of a config and checkpoint, or the speed of its data
loading: mmdet's tools/analysis_tools/benchmark.py.

    python tools/analysis_tools/benchmark.py CONFIG --checkpoint CKPT --task inference [--max-iter 2000] [--log-interval 50] [--num-warmup 5] [--fuse-conv-bn]
    python tools/analysis_tools/benchmark.py CONFIG [--task dataloader|dataset]

``--task inference`` is the FPS benchmark: one image per batch, timed after
``--num-warmup`` images. mmdet's default task is ``dataloader``, which times
the data pipeline only.

mmdet's inference benchmark puts the model on a GPU. Where torch sees no GPU,
it runs here on the CPU instead (the model stays where it was built, and the
GPU synchronisation and GPU memory query it makes are skipped; the process
memory line gives the host memory), so that the same command measures CPU
FPS.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _mmdet_tool import run_mmdet_tool  # noqa: E402


def run_inference_on_cpu() -> None:
    """Make mmdet's ``InferenceBenchmark`` run without a GPU."""
    from unittest import mock

    import torch
    from mmengine.model import BaseModel

    from mmdet.utils import benchmark
    init_model = benchmark.InferenceBenchmark._init_model

    def init_model_on_cpu(self, checkpoint, is_fuse_conv_bn):
        if self.distributed:
            raise SystemExit('benchmark.py --task inference with --launcher needs GPUs '
                             '(one process per GPU); run it without --launcher on a CPU')
        # mmdet's own model set-up, with its move to the GPU left out
        with mock.patch.object(BaseModel, 'cuda', lambda model, *args, **kwargs: model):
            return init_model(self, checkpoint, is_fuse_conv_bn)

    benchmark.InferenceBenchmark._init_model = init_model_on_cpu
    benchmark.get_max_cuda_memory = lambda *args, **kwargs: 0
    torch.cuda.synchronize = lambda *args, **kwargs: None


if __name__ == '__main__':
    import torch
    if not torch.cuda.is_available():
        run_inference_on_cpu()
    run_mmdet_tool('analysis_tools/benchmark.py')

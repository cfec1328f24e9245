"""Distributed training on CPUs (gloo) through mmengine's Runner.

mmengine 0.10.7's pytorch launcher calls ``torch.cuda.set_device`` and
wraps the model in DDP with ``device_ids=[LOCAL_RANK]``; both fail on a
machine without GPUs. The tools call :func:`setup_cpu_distributed`, which
starts the gloo process group itself (mmengine then skips its own start)
and selects a DDP wrapper that leaves ``device_ids`` unset for CPU modules.
"""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class PluginCPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper that accepts CPU modules (no ``device_ids``)."""

    def __init__(self, module: torch.nn.Module, **kwargs) -> None:
        if next(module.parameters()).device.type == 'cpu':
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(module=module, **kwargs)


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a ``--launcher pytorch`` run on a machine without CUDA.

    Returns True when it did (gloo group started, CPU DDP wrapper chosen),
    False when there is nothing to do (no launcher, or GPUs present).
    """
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                world_size=int(os.environ['WORLD_SIZE']))
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper['type'] = 'PluginCPUDistributedDataParallel'
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    return True


def destroy_distributed() -> None:
    """End a distributed run cleanly: a last barrier, then the process group
    torn down.

    A gloo worker thread drops its last reference to a finished collective
    (and so to the Python tensors it used) a moment after the caller's wait
    returns. When that moment falls in the interpreter's finalisation, the
    thread cannot take the GIL, is unwound and the process aborts
    (``terminate called without an active exception``), which ``torchrun``
    reports as a failed job after a successful run. The barrier waits with
    the GIL released, so the workers finish before the interpreter does.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

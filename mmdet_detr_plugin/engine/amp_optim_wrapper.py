"""Mixed precision where mmengine's ``AmpOptimWrapper`` cannot run.

mmengine 0.10.7's ``AmpOptimWrapper`` requires CUDA (fp16 with a gradient
scaler). ``PluginAmpOptimWrapper`` autocasts to bfloat16 on whatever device
the model is on, CPU included; bfloat16 keeps float32's exponent range, so
no loss scaling is needed. The plugin keeps its matching costs and losses
in float32 under autocast. ``tools/train.py --amp`` picks it on machines
without CUDA.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmdet.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class PluginAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under ``torch.autocast``.

    Args:
        dtype (str): ``'bfloat16'`` or ``'float16'`` (float16 without a
            scaler is only safe for short runs; prefer mmengine's
            ``AmpOptimWrapper`` on CUDA). Defaults to ``'bfloat16'``.
        **kwargs: ``OptimWrapper``'s arguments.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f'optim_wrapper.dtype must be bfloat16 or float16, got {dtype!r}')
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        device = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device_type=device,
                                                          dtype=self.cast_dtype):
            yield

from .checkpoint_compat import (CheckpointRefusedError, allow_mmengine_checkpoints,
                                mmengine_safe_globals)
from .dist import PluginCPUDistributedDataParallel, setup_cpu_distributed

__all__ = ['allow_mmengine_checkpoints', 'mmengine_safe_globals', 'CheckpointRefusedError',
           'PluginCPUDistributedDataParallel', 'setup_cpu_distributed']

from .checkpoint_compat import allow_mmengine_checkpoints, mmengine_safe_globals
from .convert import mmdet_to_plugin, plugin_to_mmdet
from .convert_original import OriginalCheckpointError, original_to_plugin, plugin_to_original
from .dist import PluginCPUDistributedDataParallel, setup_cpu_distributed

__all__ = ['allow_mmengine_checkpoints', 'mmengine_safe_globals', 'plugin_to_mmdet',
           'mmdet_to_plugin', 'original_to_plugin', 'plugin_to_original',
           'OriginalCheckpointError', 'PluginCPUDistributedDataParallel',
           'setup_cpu_distributed']

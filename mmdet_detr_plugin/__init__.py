"""DETR (Carion et al. 2020) as MMDetection 3.x components.

Importing the package (``custom_imports=dict(imports=['mmdet_detr_plugin'])``
in a config) registers its modules into mmdet's registries, lets torch's
weights-only loader read mmengine's own checkpoints, and gives a refused
checkpoint a clear error (``utils.checkpoint_compat``). Nothing else happens
at import: the speed kernels are chosen by each model's ``accel`` setting.
"""
from .utils.checkpoint_compat import allow_mmengine_checkpoints, register_checkpoint_loader
from .version import __version__

allow_mmengine_checkpoints()
register_checkpoint_loader()

from . import datasets  # noqa: E402,F401  (registers the image folder and transforms)
from . import deploy  # noqa: E402,F401  (registers the ONNX Runtime test-time model)
from . import engine  # noqa: E402,F401  (registers the hook and optimizer wrapper)
from . import models  # noqa: E402,F401  (registers the modules)
from . import structures  # noqa: E402,F401
from . import utils  # noqa: E402,F401  (registers the CPU DDP wrapper)

__all__ = ['__version__', 'models', 'structures', 'allow_mmengine_checkpoints']

"""Speed kernels for the plugin's DETR, apart from the model they speed up.

``models/`` holds DETR as the paper describes it; this package holds what
makes it fast, applied to a built model by one transform,
:func:`accelerate`, and chosen by one config block, ``model.accel``:
``'default'`` (every kernel that pays on this machine), ``'reference'``
(none) or a dict of kernels (``settings.py`` lists them). The kernels:

=====================  ================================================
``linear.py``          float32 CPU linear layers on oneDNN
``cpu.py``             whether oneDNN pays on this processor (measured)
``dropout.py``         CPU dropout masks from numpy or numba bits
``transformer.py``     fused attention and FFN, the padding-free encoder
``folded_bn.py``       frozen batch norms folded into the convolutions
``transform.py``       channels-last backbone; the transform itself
``fused_costs.py``     DETR's matching costs in one compiled pass
``lap_solver.py``      the compiled assignment solver
``matching.py``        both on an assigner
=====================  ================================================
"""
from .settings import PRESETS, AccelSettings, parse_accel
from .transform import accelerate

__all__ = ['accelerate', 'AccelSettings', 'PRESETS', 'parse_accel']

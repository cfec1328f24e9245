"""The ``model.accel`` setting: which speed kernels a detector runs.

``'default'`` applies every kernel that pays on this machine; ``'reference'``
applies none (the plain computation of ``models/``: ``nn.Linear``, torch's
dropout, the backbone as built, the encoder over the whole padded batch,
eager matching costs, scipy's solver). A dict changes kernels of the
default, e.g. ``dict(linear='torch', dropout='numba')``; a dict with
``base='reference'`` starts from the reference instead.

==================  ==========================  ============================================
kernel              default                     values
==================  ==========================  ============================================
``linear``          ``'auto'``                  ``'onednn'`` (float32 CPU products on
                                                oneDNN), ``'torch'``; ``'auto'``: oneDNN where
                                                a one-time measurement finds it faster
                                                (``accel.cpu``)
``dropout``         ``'numpy'``                 CPU dropout masks from ``'numpy'`` or
                                                ``'numba'`` bits; ``'torch'``: torch's
``fused_layers``    True                        q and k in one product, the FFN's ReLU and
                                                dropout in place (``accel.transformer``)
``skip_padding``    True                        the encoder on valid tokens only
``fold_frozen_bn``  True                        frozen batch norms folded into the convs
``channels_last``   True                        the backbone in NHWC layout
``matching_costs``  ``'auto'``                  ``'fused'`` (one compiled pass, numba),
                                                ``'eager'``; ``'auto'``: fused from
                                                ``FUSED_MIN_ELEMENTS`` costs per image
                                                when numba is installed
``solver``          ``'auto'``                  ``'numba'`` (the plugin's compiled solver),
                                                ``'scipy'``; ``'auto'``: compiled from
                                                ``COMPILED_MIN_ELEMENTS`` costs per batch
                                                when numba is installed
==================  ==========================  ============================================
"""
from dataclasses import asdict, dataclass, replace
from typing import Union

# A DETR on COCO (100 queries, tens of boxes, 6 layers) stays below both: its
# eager costs and scipy take about a millisecond, and numba (about 100 MiB once
# imported) is not loaded. Dense scenes (hundreds of boxes) are above.
FUSED_MIN_ELEMENTS = 1 << 16  # per image: L * M * N
COMPILED_MIN_ELEMENTS = 1 << 18  # per batch

_CHOICES = dict(
    linear=('auto', 'onednn', 'torch'),
    dropout=('numpy', 'numba', 'torch'),
    fused_layers=(True, False),
    skip_padding=(True, False),
    fold_frozen_bn=(True, False),
    channels_last=(True, False),
    matching_costs=('auto', 'fused', 'eager'),
    solver=('auto', 'numba', 'scipy'),
)


@dataclass(frozen=True)
class AccelSettings:
    """One value per kernel (see the module docstring)."""

    linear: str = 'auto'
    dropout: str = 'numpy'
    fused_layers: bool = True
    skip_padding: bool = True
    fold_frozen_bn: bool = True
    channels_last: bool = True
    matching_costs: str = 'auto'
    solver: str = 'auto'

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = dict(
    default=AccelSettings(),
    reference=AccelSettings(linear='torch', dropout='torch', fused_layers=False,
                            skip_padding=False, fold_frozen_bn=False, channels_last=False,
                            matching_costs='eager', solver='scipy'),
)


def parse_accel(accel: Union[str, dict, AccelSettings, None]) -> AccelSettings:
    """``model.accel`` -> settings, with one error naming the key at fault.

    Example:
        >>> parse_accel(dict(linear='torch')).linear
        'torch'
        >>> parse_accel('reference').fold_frozen_bn
        False
    """
    if accel is None:
        accel = 'default'
    if isinstance(accel, AccelSettings):
        return accel
    if isinstance(accel, str):
        if accel not in PRESETS:
            raise ValueError(f'model.accel must be one of {sorted(PRESETS)} or a dict of '
                             f'kernels, got {accel!r}')
        return PRESETS[accel]
    if not isinstance(accel, dict):
        raise TypeError(f'model.accel must be a str or a dict, got {type(accel).__name__}')
    changes = dict(accel)
    base = changes.pop('base', 'default')
    if base not in PRESETS:
        raise ValueError(f'model.accel.base must be one of {sorted(PRESETS)}, got {base!r}')
    for key, value in changes.items():
        if key not in _CHOICES:
            raise ValueError(f'model.accel.{key} is not a kernel; the kernels are '
                             f'{", ".join(_CHOICES)}')
        if value not in _CHOICES[key] or type(value) is not type(_CHOICES[key][0]):
            raise ValueError(f'model.accel.{key} must be one of {_CHOICES[key]}, '
                             f'got {value!r}')
    return replace(PRESETS[base], **changes)

"""Let torch >= 2.6 load mmengine's own checkpoints with ``weights_only``.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``, which
refuses any Python class not on its allow-list. mmengine 0.10.7 saves its
``MessageHub`` (``HistoryBuffer`` objects holding numpy arrays) in every
checkpoint and loads them with a plain ``torch.load``, so ``--resume``,
``load_from`` and ``tools/test.py CONFIG CKPT`` fail with an
``UnpicklingError``.

Rather than switching weights-only loading off (which would execute
arbitrary pickled code from any file a user loads), this adds exactly the
types mmengine writes to torch's allow-list: ``HistoryBuffer`` and the numpy
array/scalar reconstruction helpers. A ``HistoryBuffer`` also pickles its
statistics methods as ``getattr(HistoryBuffer, 'min')``; instead of allowing
``getattr`` itself, the name ``builtins.getattr`` is mapped to
:func:`history_buffer_method`, which resolves those methods and nothing
else. Everything else stays refused.

A file that holds anything else (code, arbitrary objects) is refused by
torch with a long message whose advice is to switch the check off;
:func:`load_local_checkpoint`, registered as mmengine's loader of local
files, raises :class:`CheckpointRefusedError` instead: one line naming the
file and the type refused.
"""
import re
from pickle import UnpicklingError
from typing import Any, Callable, List, Optional

import numpy as np
import torch


def _numpy_globals() -> List[object]:
    """The numpy callables and types that pickled arrays and scalars name."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in
                     (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                      np.uint32, np.uint64, np.float16, np.float32, np.float64)]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def history_buffer_method(owner: Any, name: str) -> Callable:
    """Stand-in for ``getattr`` while unpickling: only a ``HistoryBuffer``
    statistics method (``min``, ``max``, ``current``, ``mean`` or one
    registered with ``HistoryBuffer.register_statistics``)."""
    from mmengine.logging import HistoryBuffer
    if owner is HistoryBuffer and isinstance(name, str) and (
            name in HistoryBuffer._statistics_methods
            or name in ('min', 'max', 'current', 'mean')):
        return getattr(HistoryBuffer, name)
    raise UnpicklingError(f'weights-only loading refuses getattr({owner!r}, {name!r})')


def mmengine_safe_globals() -> List[object]:
    """Types found in checkpoints written by mmengine's ``CheckpointHook``."""
    from mmengine.logging import HistoryBuffer
    return [HistoryBuffer, (history_buffer_method, 'builtins.getattr'), *_numpy_globals()]


def allow_mmengine_checkpoints() -> None:
    """Add mmengine's checkpoint types to torch's weights-only allow-list.

    Idempotent; does nothing on torch versions without
    ``torch.serialization.add_safe_globals`` (they load without the list).
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return
    known = torch.serialization.get_safe_globals()
    missing = [g for g in mmengine_safe_globals() if not any(g is k or g == k for k in known)]
    if missing:
        add_safe_globals(missing)


class CheckpointRefusedError(RuntimeError):
    """A checkpoint file holding an object that weights-only loading refuses."""


def refused_global(error: Exception) -> Optional[str]:
    """The name of the global torch's weights-only unpickler refused, as its
    message states it (``GLOBAL module.name``), or None."""
    match = re.search(r'GLOBAL ([\w.]+)', str(error))
    return match.group(1) if match else None


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader of local checkpoint files, with a clear error when
    weights-only loading refuses the file.

    Raises:
        CheckpointRefusedError: naming the file and the refused type.
    """
    from mmengine.runner.checkpoint import load_from_local
    try:
        return load_from_local(filename, map_location)
    except UnpicklingError as err:
        name = refused_global(err) or 'an object of an unknown type'
        raise CheckpointRefusedError(
            f'{filename}: refused: it holds the Python global {name}; a checkpoint holds '
            'tensors, numpy arrays and mmengine\'s own logs, and loading anything else could '
            'run code: save the weights alone (a state dict) or convert the file with '
            'tools/model_converters/') from None


def register_checkpoint_loader() -> None:
    """Use :func:`load_local_checkpoint` for mmengine's local files
    (``load_from``, ``--resume``, ``init_detector``, ``Pretrained`` init).
    It calls mmengine's own loader, only the error changes. Idempotent."""
    from mmengine.runner import CheckpointLoader
    if CheckpointLoader._schemes.get('') is not load_local_checkpoint:
        CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)

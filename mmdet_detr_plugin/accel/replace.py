"""Replacing modules of a built model by faster forms of themselves.

A faster form is a subclass of the plain module's class that takes over the
plain module's parameters, buffers and submodules, the same objects (as
``nn.SyncBatchNorm.convert_sync_batchnorm`` does): state-dict keys,
``requires_grad`` flags, ``isinstance`` checks and the parameters'
identities stay as they were. Nothing is initialised or copied: the new
module is built on the ``meta`` device, which draws no random numbers, so a
model's random initialisation does not depend on which kernels are applied.
"""
from typing import Callable, Optional, Type, TypeVar

import torch
from torch import nn

M = TypeVar('M', bound=nn.Module)


def rebuild(cls: Type[M], plain: nn.Module, *args, **kwargs) -> M:
    """``cls(*args, **kwargs)`` holding ``plain``'s own parameters, buffers
    and submodules (shared, not copied) and its train/eval mode.

    Args:
        cls (type): the faster form, usually a subclass of ``type(plain)``
            whose constructor, given ``args`` and ``kwargs``, makes the same
            parameters, buffers and submodules.
        plain (nn.Module): the module to replace.

    Returns:
        nn.Module: the new module; ``plain`` should no longer be used.
    """
    with torch.device('meta'):
        new = cls(*args, **kwargs)
    for name, param in plain.named_parameters(recurse=False):
        setattr(new, name, param)
    for name, buffer in plain.named_buffers(recurse=False):
        setattr(new, name, buffer)
    for name, child in plain.named_children():
        setattr(new, name, child)
    new.training = plain.training
    if hasattr(plain, '_is_init'):  # mmengine's BaseModule: initialised or not
        new._is_init = plain._is_init
    left = [name for name, t in [*new.named_parameters(), *new.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f'{cls.__name__} has tensors {plain.__class__.__name__} does not '
                           f'provide: {left}')
    return new


def convert(module: nn.Module, fn: Callable[[nn.Module], Optional[nn.Module]]) -> nn.Module:
    """Apply ``fn`` to every module of the tree, children before parents;
    where it returns a module, that module replaces the one it was given.
    Returns the (possibly new) root."""
    for name, child in list(module.named_children()):
        new = convert(child, fn)
        if new is not child:
            setattr(module, name, new)
    out = fn(module)
    return module if out is None else out

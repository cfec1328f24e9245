"""Stop (or skip) a training step whose loss is NaN or inf, before any
weight is touched."""
import logging
from typing import Callable, Dict, Tuple

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.logging import MessageHub, print_log
from mmengine.model import is_model_wrapper
from torch import Tensor, nn

from mmdet.registry import HOOKS

POLICIES = ('raise', 'skip')


def check_losses(loss: Tensor, log_vars: Dict[str, Tensor],
                 policy: str) -> Tuple[Tensor, Dict[str, Tensor]]:
    """mmengine's parsed losses, checked: returned as they are when every
    term is finite; else, by ``policy``, an error naming the iteration and
    the terms (``'raise'``), or a loss that updates nothing (``'skip'``).

    All processes agree on the verdict (one all-reduce), so a distributed run
    stops as a whole.

    Args:
        loss (Tensor): the total loss.
        log_vars (dict[str, Tensor]): the logged terms (``loss`` among them).
        policy (str): ``'raise'`` or ``'skip'``.

    Returns:
        tuple: ``(loss, log_vars)``; on a skipped step a fresh zero leaf
        (backward reaches no parameter, so every gradient stays None and the
        optimizer moves no weight nor moment) and the terms with non-finite
        values logged as -1.
    """
    finite = torch.stack([v.detach().float().isfinite().all() for v in log_vars.values()])
    verdict = finite.all().to(torch.float32)
    distributed = dist.is_available() and dist.is_initialized()
    if distributed:
        dist.all_reduce(verdict, op=dist.ReduceOp.MIN)
    if verdict.item() == 1:
        return loss, log_vars
    bad = [name for name, ok in zip(log_vars, finite.tolist()) if not ok and name != 'loss']
    step = MessageHub.get_current_instance().get_info('iter')
    where = f'at iteration {step + 1}' if step is not None else 'in this step'
    terms = ', '.join(bad) if bad else 'on another process'
    if policy == 'raise':
        raise FloatingPointError(
            f'non-finite loss {where}: {terms}. No weights were updated; the last '
            'checkpoint is intact. Lower the learning rate or check the data, then resume '
            'with --resume; or skip such steps with '
            "custom_hooks=[dict(type='PluginNonFiniteLossHook', policy='skip')]")
    if distributed:
        raise FloatingPointError(f'non-finite loss {where}: {terms} (PluginNonFiniteLossHook\'s '
                                 'policy="skip" is not supported in distributed runs)')
    print_log(f'non-finite loss {where}: {terms}; step skipped', logger='current',
              level=logging.WARNING)
    skipped = torch.zeros((), device=loss.device, requires_grad=True)
    return skipped, {k: torch.nan_to_num(v.detach(), nan=-1.0, posinf=-1.0, neginf=-1.0)
                     for k, v in log_vars.items()}


def guard_parse_losses(model: nn.Module, policy: str) -> None:
    """Make ``model.parse_losses`` (what mmengine's ``train_step`` calls
    between the forward and the optimizer) check its result with
    :func:`check_losses`. Idempotent; works for any mmengine model."""
    if policy not in POLICIES:
        raise ValueError(f'PluginNonFiniteLossHook: policy must be one of {POLICIES}, '
                         f'got {policy!r}')
    if is_model_wrapper(model):
        model = model.module
    parse: Callable = type(model).parse_losses

    def checked_parse_losses(losses: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        return check_losses(*parse(model, losses), policy)

    model.parse_losses = checked_parse_losses


@HOOKS.register_module()
class PluginNonFiniteLossHook(Hook):
    """A NaN/inf loss term in training stops the run, or skips the step.

    ``'raise'`` stops with an error naming the iteration and the terms, before
    any weight is touched, so the last checkpoint is intact and ``--resume``
    continues from it; ``'skip'`` logs them and skips the step (no gradient,
    no optimizer update; single process only). Works with any model and
    optimizer wrapper: it checks the losses where mmengine's ``train_step``
    parses them. The plugin's configs enable it through
    ``configs/_base_/default_runtime.py``::

        custom_hooks = [dict(type='PluginNonFiniteLossHook', policy='raise')]

    Args:
        policy (str): ``'raise'`` or ``'skip'``. Defaults to ``'raise'``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, policy: str = 'raise') -> None:
        if policy not in POLICIES:
            raise ValueError(f'PluginNonFiniteLossHook: policy must be one of {POLICIES}, '
                             f'got {policy!r}')
        self.policy = policy

    def before_train(self, runner) -> None:
        guard_parse_losses(runner.model, self.policy)

"""PluginNonFiniteLossHook guards the losses of any mmengine model (the
plugin's and mmdet's own) where train_step parses them."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub

from mmdet.registry import HOOKS, MODELS


def test_hook_guards_any_model_before_training(small_mmdet_cfg):
    model = MODELS.build(small_mmdet_cfg)  # mmdet's own DETR
    hook = HOOKS.build(dict(type='PluginNonFiniteLossHook'))
    hook.before_train(SimpleNamespace(model=model))
    hook.before_train(SimpleNamespace(model=model))  # idempotent: one check, not two
    MessageHub.get_current_instance().update_info('iter', 6)
    finite = dict(loss_cls=torch.tensor(2.), loss_bbox=torch.tensor(1.))
    loss, log_vars = model.parse_losses(finite)
    assert loss.item() == 3. and set(log_vars) == {'loss', 'loss_cls', 'loss_bbox'}
    nan = dict(loss_cls=torch.tensor(float('nan')), loss_bbox=torch.tensor(1.))
    with pytest.raises(FloatingPointError, match='non-finite loss at iteration 7: loss_cls\\.'):
        model.parse_losses(nan)


def test_skip_returns_a_loss_that_updates_nothing(small_mmdet_cfg):
    model = MODELS.build(small_mmdet_cfg)
    HOOKS.build(dict(type='PluginNonFiniteLossHook', policy='skip')).before_train(
        SimpleNamespace(model=model))
    loss, log_vars = model.parse_losses(dict(loss_cls=torch.tensor(float('inf')),
                                             loss_bbox=torch.tensor(1.)))
    assert loss.item() == 0 and loss.requires_grad and loss.grad_fn is None
    assert log_vars['loss_cls'].item() == -1 and log_vars['loss_bbox'].item() == 1


def test_bad_policy_names_the_hook():
    with pytest.raises(ValueError, match="PluginNonFiniteLossHook: policy must be one of "
                       "\\('raise', 'skip'\\), got 'ignore'"):
        HOOKS.build(dict(type='PluginNonFiniteLossHook', policy='ignore'))

from .nonfinite_loss_hook import PluginNonFiniteLossHook, check_losses, guard_parse_losses

__all__ = ['PluginNonFiniteLossHook', 'check_losses', 'guard_parse_losses']

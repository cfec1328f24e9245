# MMDetection's runtime (hooks, logging, visualiser) plus the plugin's guard against a
# NaN/inf loss: it stops the run before any weight is touched, naming the iteration and
# the loss terms (policy='skip' skips such steps instead).
_base_ = 'mmdet::_base_/default_runtime.py'

custom_hooks = [dict(type='PluginNonFiniteLossHook', policy='raise')]

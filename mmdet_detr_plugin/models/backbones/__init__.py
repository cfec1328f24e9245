from .resnet import PluginResNet

__all__ = ['PluginResNet']

from .folded_bn import FoldedBatchNorm2d, FoldedConv2d, fold_frozen_batchnorm
from .resnet import PluginResNet

__all__ = ['PluginResNet', 'FoldedBatchNorm2d', 'FoldedConv2d', 'fold_frozen_batchnorm']

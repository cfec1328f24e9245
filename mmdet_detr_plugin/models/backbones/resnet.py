"""ResNet with the reference DETR's dilation pattern for DC5 models."""
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS


@MODELS.register_module()
class PluginResNet(ResNet):
    """mmdet's ``ResNet`` whose dilated stages start like torchvision's.

    With ``dilations=(1, 1, 1, 2)`` (DETR-DC5), mmdet dilates every block of
    the last stage, while torchvision's ``replace_stride_with_dilation``
    (which the reference DETR's DC5 models use) keeps the first block's 3x3
    convolution at the previous dilation, 1. The weights are the same
    tensors either way; only the outputs differ. This class applies the
    torchvision pattern, so converted DC5 checkpoints of the original
    release reproduce its outputs. All arguments are ``ResNet``'s.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        previous = 1
        for layer_name, dilation in zip(self.res_layers, self.dilations):
            if dilation > 1:
                block = getattr(self, layer_name)[0]
                conv = block.conv2  # the 3x3 convolution of Basic and Bottleneck blocks
                conv.dilation = (previous, previous)
                conv.padding = (previous, previous)
            previous = dilation

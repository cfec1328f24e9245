"""DETR's input projection: the backbone's last stage to the model width."""
from typing import List, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig


@MODELS.register_module()
class PluginInputProjection(BaseModule):
    """1x1 convolution with bias from ``in_channels`` to ``out_channels``.

    Takes the backbone's tuple of stages and projects the last one (DETR
    reads one feature map: C5, or the dilated C5 of DC5 models). Reference:
    ``input_proj``; mmdet counterpart: ``ChannelMapper(kernel_size=1,
    act_cfg=None, norm_cfg=None, num_outs=1)``, which can be used instead.

    Args:
        in_channels (int | list[int]): channels of the last stage (a list is
            accepted for config compatibility with ``ChannelMapper``; its last
            entry is used). Defaults to 2048 (ResNet-50).
        out_channels (int): model width d. Defaults to 256.
        init_cfg (dict, optional): Defaults to None (PyTorch's Conv2d init,
            as the reference).
    """

    def __init__(self, in_channels: Union[int, List[int]] = 2048, out_channels: int = 256,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(in_channels, (list, tuple)):
            in_channels = in_channels[-1]
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor]:
        """(..., [B, C_in, h, w]) -> ([B, d, h, w],)."""
        feat = inputs[-1]
        if feat.shape[1] != self.in_channels:
            raise ValueError(
                f'neck.in_channels is {self.in_channels} but the backbone gives '
                f'{feat.shape[1]} channels; set neck.in_channels={feat.shape[1]}')
        return (self.proj(feat), )

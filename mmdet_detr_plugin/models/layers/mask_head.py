"""DETR's panoptic segmentation parts (DETR paper, section 4.4 and figure 8):
per-query attention maps over the encoder memory and a small FPN-like
convolutional head that turns them into one mask logit map per query."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig


@MODELS.register_module()
class PluginMHAttentionMap(BaseModule):
    """Multi-head attention *weights* of each query over the encoder memory.

    Only the softmax of the scaled query-key products is computed (no
    values, no output projection): ``softmax(q_h k_h^T / sqrt(d / H))``.

    Args:
        embed_dims (int): model width d. Defaults to 256.
        num_heads (int): H maps per query. Defaults to 8.
        normalize (str): ``'joint'``: one softmax over all heads and
            positions together, so the H maps of a query sum to 1 jointly
            (what the reference release computes; its checkpoints expect
            it); ``'per_head'``: one softmax per head, each map sums to 1.
            Defaults to 'joint'.
        dropout (float): on the weights. Defaults to 0 (as the reference).
        rescale (bool): multiply the weights by the number of positions they
            are normalised over (h*w per head, H*h*w jointly), so that a
            uniform map is 1 everywhere instead of ~1/(h*w). The mask head
            sees the maps next to d feature channels of unit scale; at the
            reference's scale it needs many steps to let them count (a
            convergence aid for short schedules; the same function up to the
            first convolution's weights). Defaults to False (the reference).
        init_cfg (dict, optional): Defaults to None (Xavier-uniform weights,
            zero biases, as the reference).
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, normalize: str = 'joint',
                 dropout: float = 0., rescale: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'attention map: embed_dims ({embed_dims}) must be divisible by '
                             f'num_heads ({num_heads})')
        if normalize not in ('joint', 'per_head'):
            raise ValueError(f"attention map: normalize must be 'joint' or 'per_head', "
                             f'got {normalize!r}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.normalize = normalize
        self.rescale = rescale
        self.q_proj = nn.Linear(embed_dims, embed_dims)
        self.k_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)

    def init_weights(self) -> None:
        super().init_weights()
        for proj in (self.q_proj, self.k_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, query: Tensor, memory: Tensor, memory_mask: Optional[Tensor],
                spatial_shape: Tuple[int, int]) -> Tensor:
        """
        Args:
            query (Tensor): [B, N, d], the last decoder layer's outputs.
            memory (Tensor): [B, h*w, d], the encoder's outputs (row-major).
            memory_mask (Tensor, optional): [B, h*w] bool, True on padding
                (weight 0 there).
            spatial_shape (tuple): (h, w) of the memory.

        Returns:
            Tensor: [B, N, H, h, w] attention weights.
        """
        batch_size, num_queries = query.shape[:2]
        head_dims = self.embed_dims // self.num_heads
        q = self.q_proj(query).view(batch_size, num_queries, self.num_heads, head_dims)
        k = self.k_proj(memory).view(batch_size, -1, self.num_heads, head_dims)
        logits = torch.einsum('bnhc,bshc->bnhs', q * head_dims**-0.5, k)  # [B, N, H, S]
        if memory_mask is not None:
            logits = logits.masked_fill(memory_mask[:, None, None, :], float('-inf'))
        if self.normalize == 'joint':
            weights = logits.flatten(2).softmax(-1).view_as(logits)
        else:
            weights = logits.softmax(-1)
        if self.rescale:
            weights = weights * (weights[0, 0].numel() if self.normalize == 'joint'
                                 else weights.shape[-1])
        weights = self.dropout(weights)
        return weights.view(batch_size, num_queries, self.num_heads, *spatial_shape)


class ConvGNReLU(nn.Module):
    """3x3 convolution (with bias) -> GroupNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        if out_channels % groups:
            raise ValueError(f'mask head: {out_channels} channels are not divisible into '
                             f'{groups} GroupNorm groups (embed_dims must be a multiple of '
                             f'{groups} * 2 ** (number of levels + 1))')
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.gn = nn.GroupNorm(groups, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.gn(self.conv(x)))


@MODELS.register_module()
class PluginMaskHead(BaseModule):
    """DETR's FPN-like mask head, run once per (image, query) pair.

    The input projection of the last backbone stage (d channels) is
    concatenated with the query's H attention maps; two conv blocks keep
    the stride, then each finer backbone level is 1x1-adapted and added to
    the nearest-upsampled result, followed by a conv block halving the
    channels. With the reference's three levels (C4, C3, C2 of a ResNet):
    d+H -> d+H -> d/2 (+C4) -> d/4 (+C3) -> d/8 (+C2) -> d/16 -> 1, at the
    stride of the finest level (4).

    Args:
        embed_dims (int): d. Defaults to 256.
        num_heads (int): attention maps per query. Defaults to 8.
        in_channels (Sequence[int]): channels of the finer backbone levels,
            coarse to fine. Defaults to (1024, 512, 256) (ResNet-50/101 C4,
            C3, C2).
        norm_groups (int): GroupNorm groups. Defaults to 8.
        init_cfg (dict, optional): Defaults to None (Kaiming-uniform with
            a=1, zero biases, as the reference).
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8,
                 in_channels: Sequence[int] = (1024, 512, 256), norm_groups: int = 8,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = tuple(in_channels)
        widths = [embed_dims + num_heads] + [
            embed_dims // 2**(i + 1) for i in range(len(self.in_channels) + 1)]
        self.convs = nn.ModuleList([ConvGNReLU(widths[0], widths[0], norm_groups)] + [
            ConvGNReLU(widths[i], widths[i + 1], norm_groups) for i in range(len(widths) - 1)])
        self.adapters = nn.ModuleList([
            nn.Conv2d(c, widths[i + 1], 1) for i, c in enumerate(self.in_channels)])
        self.out_conv = nn.Conv2d(widths[-1], 1, 3, padding=1)

    def init_weights(self) -> None:
        super().init_weights()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, feat: Tensor, attention: Tensor, fpn_feats: Sequence[Tensor],
                batch_inds: Tensor) -> Tensor:
        """
        Args:
            feat (Tensor): [B, d, h, w], the input projection of the last stage.
            attention (Tensor): [Q, H, h, w], the attention maps of Q queries.
            fpn_feats (Sequence[Tensor]): finer levels, coarse to fine, each
                [B, C_i, h_i, w_i].
            batch_inds (Tensor): [Q] long, the image of each query.

        Returns:
            Tensor: [Q, h_f, w_f] mask logits at the finest level's size.
        """
        if len(fpn_feats) != len(self.adapters):
            raise ValueError(f'mask head: {len(fpn_feats)} backbone levels given, '
                             f'in_channels has {len(self.adapters)} ({self.in_channels})')
        x = torch.cat([feat[batch_inds], attention.to(feat.dtype)], dim=1)
        x = self.convs[1](self.convs[0](x))
        for adapter, conv, level in zip(self.adapters, self.convs[2:], fpn_feats):
            # adapting per image, then indexing, equals adapting per query
            lateral = adapter(level)[batch_inds]
            x = conv(lateral + F.interpolate(x, size=lateral.shape[-2:], mode='nearest'))
        return self.out_conv(x)[:, 0]

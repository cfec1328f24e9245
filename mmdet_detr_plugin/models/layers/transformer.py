"""DETR's transformer encoder and decoder (DETR paper, section 3.2 and A.3).

Post-norm by default (the paper's models), pre-norm as an option. Positional
encodings are added to queries and keys at every layer, never to values.
The call signatures match mmdet's ``DetrTransformerEncoder`` /
``DetrTransformerDecoder``, so the detectors of both can use either.

Parameter names follow the reference release (``self_attn``, ``linear1``,
``linear2``, ``norm1``, ``dropout1``...), which keeps checkpoint conversion a
renaming. Everything here is the reference computation (``nn.Linear``,
``nn.Dropout``); ``mmdet_detr_plugin.accel`` swaps in faster forms of the same
modules, with the same parameters, when a config asks for them.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from .attention import DetrAttention


def with_pos(x: Tensor, pos: Optional[Tensor]) -> Tensor:
    return x if pos is None else x + pos


class DetrFFN(nn.Module):
    """linear1 -> ReLU -> dropout -> linear2: [..., d] -> [..., d]."""

    def __init__(self, embed_dims: int, feedforward_channels: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(embed_dims, feedforward_channels)
        self.linear2 = nn.Linear(feedforward_channels, embed_dims)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))


class DetrEncoderLayer(nn.Module):
    """Self-attention + FFN, each with residual, dropout and layer norm."""

    def __init__(self, embed_dims: int = 256, num_heads: int = 8,
                 feedforward_channels: int = 2048, dropout: float = 0.1,
                 pre_norm: bool = False) -> None:
        super().__init__()
        self.self_attn = DetrAttention(embed_dims, num_heads, attn_drop=dropout)
        self.ffn = DetrFFN(embed_dims, feedforward_channels, dropout)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, x: Tensor, pos: Optional[Tensor],
                key_padding_mask: Optional[Tensor]) -> Tensor:
        """x, pos: [B, S, d]; key_padding_mask: [B, S] True on padding -> [B, S, d]."""
        if self.pre_norm:
            y = self.norm1(x)
            qk = with_pos(y, pos)
            x = x + self.dropout1(self.self_attn(qk, qk, y, key_padding_mask))
            return x + self.dropout2(self.ffn(self.norm2(x)))
        qk = with_pos(x, pos)
        x = self.norm1(x + self.dropout1(self.self_attn(qk, qk, x, key_padding_mask)))
        return self.norm2(x + self.dropout2(self.ffn(x)))


class DetrDecoderLayer(nn.Module):
    """Self-attention among queries (optional), cross-attention to the
    encoder memory, FFN; each with residual, dropout and layer norm."""

    def __init__(self, embed_dims: int = 256, num_heads: int = 8,
                 feedforward_channels: int = 2048, dropout: float = 0.1,
                 pre_norm: bool = False, self_attn: bool = True) -> None:
        super().__init__()
        if self_attn:
            self.self_attn = DetrAttention(embed_dims, num_heads, attn_drop=dropout)
            self.norm1 = nn.LayerNorm(embed_dims)
            self.dropout1 = nn.Dropout(dropout)
        self.cross_attn = DetrAttention(embed_dims, num_heads, attn_drop=dropout)
        self.ffn = DetrFFN(embed_dims, feedforward_channels, dropout)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.norm3 = nn.LayerNorm(embed_dims)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.pre_norm = pre_norm
        self.with_self_attn = self_attn

    def forward(self, x: Tensor, query_pos: Tensor, memory: Tensor,
                memory_with_pos: Tensor, key_padding_mask: Optional[Tensor],
                self_attn_mask: Optional[Tensor] = None) -> Tensor:
        """Decode one step.

        Args:
            x (Tensor): [B, N, d] query content.
            query_pos (Tensor): [B, N, d] query positions.
            memory (Tensor): [B, S, d] encoder output (the values).
            memory_with_pos (Tensor): [B, S, d] memory + positions (the keys).
            key_padding_mask (Tensor, optional): [B, S] True on padding.
            self_attn_mask (Tensor, optional): [N, N] (or [B, N, N]) True where
                query i may not attend to query j (query groups, denoising).

        Returns:
            Tensor: [B, N, d].
        """
        if self.pre_norm:
            if self.with_self_attn:
                y = self.norm1(x)
                qk = y + query_pos
                x = x + self.dropout1(self.self_attn(qk, qk, y, attn_mask=self_attn_mask))
            y = self.norm2(x)
            x = x + self.dropout2(self.cross_attn(y + query_pos, memory_with_pos, memory,
                                                  key_padding_mask))
            return x + self.dropout3(self.ffn(self.norm3(x)))
        if self.with_self_attn:
            qk = x + query_pos
            x = self.norm1(x + self.dropout1(self.self_attn(qk, qk, x,
                                                            attn_mask=self_attn_mask)))
        x = self.norm2(x + self.dropout2(
            self.cross_attn(x + query_pos, memory_with_pos, memory, key_padding_mask)))
        return self.norm3(x + self.dropout3(self.ffn(x)))


@MODELS.register_module()
class PluginDetrTransformerEncoder(BaseModule):
    """Stack of encoder layers over the flattened feature map.

    Args:
        num_layers (int): Defaults to 6.
        embed_dims (int): model width d. Defaults to 256.
        num_heads (int): Defaults to 8.
        feedforward_channels (int): FFN hidden width. Defaults to 2048.
        dropout (float): dropout on attention weights, residual branches and
            the FFN. Defaults to 0.1.
        pre_norm (bool): layer norm before each sub-layer, plus a final norm.
            Defaults to False (post-norm, as the paper).
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, num_layers: int = 6, embed_dims: int = 256, num_heads: int = 8,
                 feedforward_channels: int = 2048, dropout: float = 0.1,
                 pre_norm: bool = False, init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.num_layers = num_layers
        self.layers = nn.ModuleList(
            DetrEncoderLayer(embed_dims, num_heads, feedforward_channels, dropout, pre_norm)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(embed_dims) if pre_norm else None

    def forward(self, query: Tensor, query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, **kwargs) -> Tensor:
        """query, query_pos: [B, S, d]; key_padding_mask: [B, S] -> memory [B, S, d]."""
        x = query
        for layer in self.layers:
            x = layer(x, query_pos, key_padding_mask)
        return x if self.norm is None else self.norm(x)


@MODELS.register_module()
class PluginDetrTransformerDecoder(BaseModule):
    """Stack of decoder layers; returns every layer's normalised output.

    Args:
        num_layers (int): Defaults to 6.
        embed_dims (int): Defaults to 256.
        num_heads (int): Defaults to 8.
        feedforward_channels (int): Defaults to 2048.
        dropout (float): Defaults to 0.1.
        pre_norm (bool): Defaults to False.
        self_attn (bool): self-attention among queries. Without it no query
            knows what the others predict, and duplicates follow (DETR paper,
            4.2). Defaults to True.
        return_intermediate (bool): return all layers (needed for the
            auxiliary losses); else only the last, as [1, B, N, d].
            Defaults to True.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, num_layers: int = 6, embed_dims: int = 256, num_heads: int = 8,
                 feedforward_channels: int = 2048, dropout: float = 0.1,
                 pre_norm: bool = False, self_attn: bool = True,
                 return_intermediate: bool = True, init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.num_layers = num_layers
        self.return_intermediate = return_intermediate
        self.layers = nn.ModuleList(
            DetrDecoderLayer(embed_dims, num_heads, feedforward_channels, dropout, pre_norm,
                             self_attn) for _ in range(num_layers))
        # one final norm, shared by every layer's output (reference: decoder.norm)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, query_pos: Tensor,
                key_pos: Optional[Tensor], key_padding_mask: Optional[Tensor] = None,
                self_attn_mask: Optional[Tensor] = None, **kwargs) -> Tensor:
        """Decode.

        Args:
            query (Tensor): [B, N, d] initial content (zeros in DETR).
            key (Tensor): [B, S, d] encoder memory.
            value (Tensor): [B, S, d] encoder memory.
            query_pos (Tensor): [B, N, d] query positions (DETR: the learned
                query embeddings).
            key_pos (Tensor, optional): [B, S, d] positions of the memory.
            key_padding_mask (Tensor, optional): [B, S] True on padding.
            self_attn_mask (Tensor, optional): [N, N] (or [B, N, N], per
                image) True where query i may not attend to query j.

        Returns:
            Tensor: [num_layers, B, N, d] (or [1, B, N, d] without
            ``return_intermediate``), each after the final norm.
        """
        key_with_pos = with_pos(key, key_pos)  # once, shared by every layer
        x = query
        outputs = []
        for layer in self.layers:
            x = layer(x, query_pos, value, key_with_pos, key_padding_mask, self_attn_mask)
            if self.return_intermediate:
                outputs.append(self.norm(x))
        if not self.return_intermediate:
            return self.norm(x).unsqueeze(0)
        return torch.stack(outputs)

    def cross_attention_weights(self, enable: bool = True) -> None:
        """Switch on (or off) keeping each layer's head-averaged cross-attention
        weights [B, N, S] in ``layers[i].cross_attn.last_weights``."""
        for layer in self.layers:
            layer.cross_attn.keep_weights = enable
            if not enable:
                layer.cross_attn.last_weights = None

"""DETR's transformer encoder and decoder (DETR paper, section 3.2 and A.3).

Post-norm by default (the paper's models), pre-norm as an option. Positional
encodings are added to queries and keys at every layer, never to values.
The call signatures match mmdet's ``DetrTransformerEncoder`` /
``DetrTransformerDecoder``, so the detectors of both can use either.

Parameter names follow the reference release (``self_attn``, ``linear1``,
``linear2``, ``norm1``...), which keeps checkpoint conversion a renaming.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from .attention import DetrAttention
from .dropout import dropout, keep_mask, masked_relu_
from .linear import Linear, linear


def _with_pos(x: Tensor, pos: Optional[Tensor]) -> Tensor:
    return x if pos is None else x + pos


class _FFN(nn.Module):
    """linear1 -> ReLU -> dropout -> linear2: [..., d] -> [..., d]."""

    def __init__(self, embed_dims: int, feedforward_channels: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = Linear(embed_dims, feedforward_channels)
        self.linear2 = Linear(feedforward_channels, embed_dims)
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        # on a 2-D input the hidden [B*L, F] is a tensor of its own, so the
        # ReLU can work in place on it (on a view it would cost copies in the
        # backward)
        hidden = self.linear1(x.reshape(-1, shape[-1]))  # [B*L, F]
        if self.training and self.dropout > 0 and hidden.device.type == 'cpu':
            # dropout before the ReLU (they commute: the mask is 0 or 1), both
            # in place on the hidden; the 1 / (1 - p) scale goes on linear2's
            # product [B*L, d], the smallest tensor it can go on (d < F), in
            # the same pass that adds the bias
            keep = keep_mask(hidden.shape, self.dropout, dtype=hidden.dtype)
            hidden = masked_relu_(hidden, keep)
            out = torch.add(self.linear2.bias, linear(hidden, self.linear2.weight),
                            alpha=1. / (1. - self.dropout))
            return out.view(*shape[:-1], -1)
        if self.training and self.dropout > 0:
            hidden = F.dropout(torch.relu_(hidden), self.dropout, True)
        else:
            hidden = masked_relu_(hidden)
        return self.linear2(hidden).view(*shape[:-1], -1)


class DetrEncoderLayer(nn.Module):
    """Self-attention + FFN, each with residual, dropout and layer norm."""

    def __init__(self, embed_dims: int = 256, num_heads: int = 8,
                 feedforward_channels: int = 2048, dropout: float = 0.1,
                 pre_norm: bool = False) -> None:
        super().__init__()
        self.self_attn = DetrAttention(embed_dims, num_heads, attn_drop=dropout)
        self.ffn = _FFN(embed_dims, feedforward_channels, dropout)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.dropout = dropout
        self.pre_norm = pre_norm

    def _drop(self, x: Tensor) -> Tensor:
        return dropout(x, self.dropout, self.training)

    def forward(self, x: Tensor, pos: Optional[Tensor], key_padding_mask: Optional[Tensor],
                lengths: Optional[Sequence[int]] = None) -> Tensor:
        """x, pos: [B, S, d]; key_padding_mask: [B, S] True on padding -> [B, S, d].
        With ``lengths``, x and pos are packed valid tokens [T, d] (see
        ``DetrAttention``) and ``key_padding_mask`` is None -> [T, d]."""
        if self.pre_norm:
            y = self.norm1(x)
            qk = _with_pos(y, pos)
            x = x + self._drop(self.self_attn(qk, qk, y, key_padding_mask, lengths=lengths))
            return x + self._drop(self.ffn(self.norm2(x)))
        qk = _with_pos(x, pos)
        x = self.norm1(x + self._drop(self.self_attn(qk, qk, x, key_padding_mask,
                                                     lengths=lengths)))
        return self.norm2(x + self._drop(self.ffn(x)))


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
        self.cross_attn = DetrAttention(embed_dims, num_heads, attn_drop=dropout)
        self.ffn = _FFN(embed_dims, feedforward_channels, dropout)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.norm3 = nn.LayerNorm(embed_dims)
        self.dropout = dropout
        self.pre_norm = pre_norm
        self.with_self_attn = self_attn

    def _drop(self, x: Tensor) -> Tensor:
        return dropout(x, self.dropout, self.training)

    def forward(self, x: Tensor, query_pos: Tensor, memory: Tensor,
                memory_with_pos: Tensor, key_padding_mask: Optional[Tensor],
                self_attn_mask: Optional[Tensor] = None) -> Tensor:
        """Decode one step.

        Args:
            x (Tensor): [B, N, d] query content.
            query_pos (Tensor): [B, N, d] learned query embeddings.
            memory (Tensor): [B, S, d] encoder output (the values).
            memory_with_pos (Tensor): [B, S, d] memory + positions (the keys).
            key_padding_mask (Tensor, optional): [B, S] True on padding.
            self_attn_mask (Tensor, optional): [N, N] True where query i may not
                attend to query j (query groups).

        Returns:
            Tensor: [B, N, d].
        """
        if self.pre_norm:
            if self.with_self_attn:
                y = self.norm1(x)
                qk = y + query_pos
                x = x + self._drop(self.self_attn(qk, qk, y, attn_mask=self_attn_mask))
            y = self.norm2(x)
            x = x + self._drop(self.cross_attn(y + query_pos, memory_with_pos, memory,
                                               key_padding_mask))
            return x + self._drop(self.ffn(self.norm3(x)))
        if self.with_self_attn:
            qk = x + query_pos
            x = self.norm1(x + self._drop(self.self_attn(qk, qk, x, attn_mask=self_attn_mask)))
        x = self.norm2(x + self._drop(
            self.cross_attn(x + query_pos, memory_with_pos, memory, key_padding_mask)))
        return self.norm3(x + self._drop(self.ffn(x)))


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
        skip_padding (bool): run the layers on the valid tokens of a padded
            batch only (the same outputs at valid positions, fewer FLOPs by
            the padded fraction; the memory is 0 at padded positions). A
            consumer that reads the memory at padded positions, such as
            convolutions over it as a feature map, should turn it off to
            get the reference's values there. Defaults to True.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, num_layers: int = 6, embed_dims: int = 256, num_heads: int = 8,
                 feedforward_channels: int = 2048, dropout: float = 0.1,
                 pre_norm: bool = False, skip_padding: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.skip_padding = skip_padding
        self.num_layers = num_layers
        self.layers = nn.ModuleList(
            DetrEncoderLayer(embed_dims, num_heads, feedforward_channels, dropout, pre_norm)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(embed_dims) if pre_norm else None

    def forward(self, query: Tensor, query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, **kwargs) -> Tensor:
        """query, query_pos: [B, S, d]; key_padding_mask: [B, S] -> memory [B, S, d].

        With ``skip_padding`` and a batch that has padding, the layers run on
        the valid tokens alone and the memory is 0 at padded positions (which
        no valid token attends to, here or in the decoder).
        """
        valid = self._packing(key_padding_mask)
        if valid is None:
            x = query
            for layer in self.layers:
                x = layer(x, query_pos, key_padding_mask)
            return x if self.norm is None else self.norm(x)
        index, lengths = valid
        batch_size, length, dims = query.shape
        x = query.reshape(-1, dims).index_select(0, index)  # [T, d], image after image
        pos = None if query_pos is None else query_pos.reshape(-1, dims).index_select(0, index)
        for layer in self.layers:
            x = layer(x, pos, None, lengths)
        if self.norm is not None:
            x = self.norm(x)
        memory = x.new_zeros(batch_size * length, dims).index_copy(0, index, x)
        return memory.view(batch_size, length, dims)

    def _packing(self, key_padding_mask: Optional[Tensor]
                 ) -> Optional[Tuple[Tensor, List[int]]]:
        """Flat indices [T] of the valid tokens of [B, S] and each image's
        count; None where packing saves nothing (no padding) or is off."""
        if (not self.skip_padding or key_padding_mask is None
                or any(layer.self_attn.keep_weights for layer in self.layers)
                or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            # tracing and compiling (FLOP counting, export) get one static graph
            return None
        valid = ~key_padding_mask.bool().cpu()  # [B, S]; the one host sync per forward
        lengths = valid.sum(1).tolist()
        if sum(lengths) == valid.numel() or 0 in lengths:
            # nothing to skip, or an image with no valid token: the padded path
            # gives what the reference gives for it
            return None
        index = valid.reshape(-1).nonzero().squeeze(1)
        return index.to(key_padding_mask.device, non_blocking=True), lengths


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
            query_pos (Tensor): [B, N, d] learned query embeddings.
            key_pos (Tensor, optional): [B, S, d] positions of the memory.
            key_padding_mask (Tensor, optional): [B, S] True on padding.
            self_attn_mask (Tensor, optional): [N, N] True where query i may
                not attend to query j.

        Returns:
            Tensor: [num_layers, B, N, d] (or [1, B, N, d] without
            ``return_intermediate``), each after the final norm.
        """
        key_with_pos = _with_pos(key, key_pos)  # once, shared by every layer
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

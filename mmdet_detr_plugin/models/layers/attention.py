"""Multi-head attention for DETR, on ``scaled_dot_product_attention``.

Parameters keep the layout of ``torch.nn.MultiheadAttention`` (and so of the
reference DETR release): ``in_proj_weight`` [3 * d, d] with rows q | k | v,
``in_proj_bias`` [3 * d], ``out_proj`` Linear(d, d). Positional encodings are
added to queries and keys, never to values (DETR paper, A.3).

Two savings over the generic path: when the query and key inputs are the
same tensor (self-attention, ``q = k = x + pos``) both are projected in one
matmul; and the fused kernel never materialises the attention matrix unless
the weights are asked for (cross-attention maps for visualisation).

Self-attention also takes packed sequences: the tokens of all images in one
[T, d] tensor, image after image, with their ``lengths``. Projections then
run on valid tokens only and each image attends within itself; the encoder
uses this to skip the padding of a batch.
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dropout import keep_mask
from .linear import Linear, linear


class DetrAttention(nn.Module):
    """Multi-head attention, batch first.

    Args:
        embed_dims (int): model width d. Defaults to 256.
        num_heads (int): number of heads; must divide ``embed_dims``. Defaults to 8.
        attn_drop (float): dropout on the attention weights (training only).
            Defaults to 0.
        keep_weights (bool): also compute the head-averaged attention weights
            and keep them in ``self.last_weights`` [B, Lq, Lk] (slower: for
            visualisation). Defaults to False.
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8,
                 attn_drop: float = 0., keep_weights: bool = False) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.attn_drop = attn_drop
        self.keep_weights = keep_weights
        self.last_weights: Optional[Tensor] = None
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dims, embed_dims))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dims))
        self.out_proj = Linear(embed_dims, embed_dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # as torch.nn.MultiheadAttention
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def _split_heads(self, x: Tensor) -> Tensor:
        """[B, L, d] -> [B, heads, L, d / heads]."""
        batch_size, length, _ = x.shape
        return x.view(batch_size, length, self.num_heads, self.head_dims).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Optional[Tensor] = None,
                attn_mask: Optional[Tensor] = None,
                lengths: Optional[Sequence[int]] = None) -> Tensor:
        """Attend.

        Args:
            query (Tensor): [B, Lq, d], positional encoding already added.
            key (Tensor): [B, Lk, d], positional encoding already added. May be
                the same tensor object as ``query`` (self-attention).
            value (Tensor): [B, Lk, d].
            key_padding_mask (Tensor, optional): [B, Lk] bool, True on padded
                keys, which get no attention.
            attn_mask (Tensor, optional): [Lq, Lk] bool, True where a query may
                NOT attend to a key (``nn.MultiheadAttention``'s convention).
            lengths (Sequence[int], optional): packed self-attention: query,
                key and value are [T, d] with the tokens of image i in rows
                ``sum(lengths[:i])`` to ``sum(lengths[:i + 1])``; no masks.

        Returns:
            Tensor: [B, Lq, d] (packed: [T, d]), after the output projection.
        """
        if lengths is not None and (query is not key or self.keep_weights):
            raise ValueError('packed attention is for self-attention (query is key) '
                             'without kept weights')
        d = self.embed_dims
        w, b = self.in_proj_weight, self.in_proj_bias
        if query is key:
            q, k = linear(query, w[:2 * d], b[:2 * d]).chunk(2, dim=-1)
        else:
            q = linear(query, w[:d], b[:d])
            k = linear(key, w[d:2 * d], b[d:2 * d])
        v = linear(value, w[2 * d:], b[2 * d:])
        if lengths is not None:
            # each image alone: [L_i, d] -> [1, heads, L_i, d / heads] and back
            out = torch.cat([
                self._attend(*(self._split_heads(t[None]) for t in qkv), None)[0]
                for qkv in zip(q.split(lengths), k.split(lengths), v.split(lengths))
            ])  # [T, d]
            return self.out_proj(out)

        # SDPA's boolean mask is True where attention is allowed
        allowed = None
        if key_padding_mask is not None:
            allowed = ~key_padding_mask.bool()[:, None, None, :]  # [B, 1, 1, Lk]
        if attn_mask is not None:
            pair = ~attn_mask.bool()  # [Lq, Lk]
            allowed = pair if allowed is None else allowed & pair
        out = self._attend(self._split_heads(q), self._split_heads(k), self._split_heads(v),
                           allowed)
        return self.out_proj(out)  # [B, Lq, d]

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, allowed: Optional[Tensor]) -> Tensor:
        """q [B, heads, Lq, d / heads], k and v [B, heads, Lk, d / heads],
        ``allowed`` SDPA's boolean mask -> [B, Lq, d], heads merged."""
        dropout_p = self.attn_drop if self.training else 0.
        if self.keep_weights or (dropout_p > 0 and q.device.type == 'cpu'):
            # CPU SDPA with dropout takes its unfused path anyway; the explicit
            # form lets the attention weights use the plugin's faster dropout
            out = self._attend_explicit(q, k, v, allowed, dropout_p)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
        batch_size, _, length, _ = out.shape
        return out.transpose(1, 2).reshape(batch_size, length, self.embed_dims)

    def _attend_explicit(self, q: Tensor, k: Tensor, v: Tensor,
                         allowed: Optional[Tensor], dropout_p: float) -> Tensor:
        """The explicit form; keeps head-averaged weights [B, Lq, Lk] when
        ``keep_weights``. ``allowed`` is SDPA's boolean mask: True where
        attention may go."""
        # scale q (not the [Lq, Lk] logits) and add the mask in place: no
        # extra pass or copy over the logits
        logits = torch.matmul(q * (1. / math.sqrt(self.head_dims)), k.transpose(-2, -1))
        if allowed is not None:
            bias = torch.zeros(allowed.shape, dtype=logits.dtype, device=logits.device)
            logits += bias.masked_fill_(~allowed, float('-inf'))  # small, broadcast
        weights = logits.softmax(dim=-1)  # [B, heads, Lq, Lk]
        if self.keep_weights:
            self.last_weights = weights.mean(dim=1).detach()
        if dropout_p > 0 and weights.device.type == 'cpu':
            # zero the dropped weights with a 0 / 1 mask and put the 1 / (1 - p)
            # scale on v, [Lk, head_dims], not on the [Lq, Lk] weights
            weights = weights * keep_mask(weights.shape, dropout_p, dtype=weights.dtype)
            v = v * (1. / (1. - dropout_p))
        elif dropout_p > 0:
            weights = F.dropout(weights, dropout_p, True)
        return torch.matmul(weights, v)

    def extra_repr(self) -> str:
        return f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, attn_drop={self.attn_drop}'

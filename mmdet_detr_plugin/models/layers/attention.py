"""Multi-head attention for DETR (DETR paper, A.3; Vaswani et al. 2017).

The parameters keep the layout of ``torch.nn.MultiheadAttention``, and so of
the reference release: ``in_proj_weight`` [3 * d, d] with the rows of the
q | k | v projections, ``in_proj_bias`` [3 * d], ``out_proj`` Linear(d, d).
Positional encodings are added to queries and keys by the caller, never to
values. The product runs on ``F.scaled_dot_product_attention``; the explicit
form (softmax of the scaled logits) is taken only where the attention
weights are kept for visualisation.

This is the reference computation. ``mmdet_detr_plugin.accel`` replaces it
by a faster form with the same parameters (one product for q and k in
self-attention, packed sequences, CPU dropout masks).
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def allowed_pairs(key_padding_mask: Optional[Tensor],
                  attn_mask: Optional[Tensor]) -> Optional[Tensor]:
    """SDPA's boolean mask (True where a query may attend to a key) from
    ``nn.MultiheadAttention``'s two masks (True where it may not).

    Args:
        key_padding_mask (Tensor, optional): [B, Lk], True on padded keys.
        attn_mask (Tensor, optional): [Lq, Lk] (or [B, Lq, Lk], one per
            image), True on forbidden pairs.

    Returns:
        Tensor | None: broadcastable to [B, heads, Lq, Lk].
    """
    allowed = None
    if key_padding_mask is not None:
        allowed = ~key_padding_mask.bool()[:, None, None, :]  # [B, 1, 1, Lk]
    if attn_mask is not None:
        pairs = ~attn_mask.bool()  # [Lq, Lk] or [B, Lq, Lk]
        if pairs.dim() == 3:
            pairs = pairs[:, None]  # [B, 1, Lq, Lk]
        allowed = pairs if allowed is None else allowed & pairs
    return allowed


class DetrAttention(nn.Module):
    """Multi-head attention, batch first.

    Args:
        embed_dims (int): model width d. Defaults to 256.
        num_heads (int): number of heads; must divide ``embed_dims``.
            Defaults to 8.
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
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # as torch.nn.MultiheadAttention
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Optional[Tensor] = None,
                attn_mask: Optional[Tensor] = None) -> Tensor:
        """Attend.

        Args:
            query (Tensor): [B, Lq, d], positional encoding already added.
            key (Tensor): [B, Lk, d], positional encoding already added.
            value (Tensor): [B, Lk, d].
            key_padding_mask (Tensor, optional): [B, Lk] bool, True on padded
                keys, which get no attention.
            attn_mask (Tensor, optional): [Lq, Lk] (or [B, Lq, Lk]) bool, True
                where a query may NOT attend to a key (``nn.MultiheadAttention``'s
                convention).

        Returns:
            Tensor: [B, Lq, d], after the output projection.
        """
        d = self.embed_dims
        w, b = self.in_proj_weight, self.in_proj_bias
        q = self.split_heads(F.linear(query, w[:d], b[:d]))  # [B, heads, Lq, d / heads]
        k = self.split_heads(F.linear(key, w[d:2 * d], b[d:2 * d]))  # [B, heads, Lk, d / heads]
        v = self.split_heads(F.linear(value, w[2 * d:], b[2 * d:]))
        out = self.attend(q, k, v, allowed_pairs(key_padding_mask, attn_mask))
        return self.out_proj(out)

    def split_heads(self, x: Tensor) -> Tensor:
        """[B, L, d] -> [B, heads, L, d / heads]."""
        batch_size, length, _ = x.shape
        return x.view(batch_size, length, self.num_heads, self.head_dims).transpose(1, 2)

    def merge_heads(self, x: Tensor) -> Tensor:
        """[B, heads, L, d / heads] -> [B, L, d]."""
        batch_size, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch_size, length, self.embed_dims)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, allowed: Optional[Tensor]) -> Tensor:
        """softmax(q k^T / sqrt(d / heads)) v, heads merged: [B, Lq, d].

        Args:
            q (Tensor): [B, heads, Lq, d / heads].
            k, v (Tensor): [B, heads, Lk, d / heads].
            allowed (Tensor, optional): SDPA's boolean mask, True where a
                query may attend to a key (:func:`allowed_pairs`).
        """
        dropout_p = self.attn_drop if self.training else 0.
        if not self.keep_weights:
            return self.merge_heads(
                F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p))
        logits = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dims)
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float('-inf'))
        weights = logits.softmax(dim=-1)  # [B, heads, Lq, Lk]
        self.last_weights = weights.mean(dim=1).detach()
        weights = F.dropout(weights, dropout_p, self.training)
        return self.merge_heads(torch.matmul(weights, v))

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'attn_drop={self.attn_drop}')

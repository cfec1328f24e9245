"""Faster forms of the transformer's modules (``models/layers/``), with the
same parameters and, up to float rounding, the same outputs.

* :class:`FastDetrAttention`: in self-attention (``query is key``, as the
  layers call it with ``q = k = x + pos``) q and k are projected in one
  product; the projections can run on oneDNN (``accel.linear``); in CPU
  training with dropout on the attention weights, an explicit form whose
  dropout uses the fast masks of ``accel.dropout`` (CPU SDPA with dropout has
  no fused kernel anyway): q scaled instead of the logits, the mask added in
  place, dropped weights zeroed by one multiply and the 1 / (1 - p) scale put
  on v; and packed sequences (``lengths``) for the padding-free encoder.
* :class:`FastDetrFFN`: the hidden [B*L, F] is a tensor of its own, so the
  ReLU runs in place on it (``masked_relu_``); in CPU training the dropout
  mask is applied in the same pass, before the ReLU (they commute: the mask
  is 0 or 1), and the 1 / (1 - p) scale goes on linear2's product [B*L, d],
  the smallest tensor it can go on, in the pass that adds the bias.
* :class:`PackedEncoder` (with :class:`PackedEncoderLayer`): a padded batch's
  valid tokens are gathered into one [T, d] tensor, image after image; the
  projections, FFNs and norms run on them alone, each image attends within
  itself, and the result is scattered back (0 at padded positions, which no
  valid token attends to, here or in the decoder).
"""
import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.layers.attention import DetrAttention, allowed_pairs
from ..models.layers.transformer import (DetrEncoderLayer, DetrFFN,
                                         PluginDetrTransformerEncoder, with_pos)
from .dropout import keep_mask, masked_relu_
from .replace import rebuild

LinearFn = Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]


class FastDetrAttention(DetrAttention):
    """:class:`DetrAttention` with fused q/k projection, a chosen product and
    the fast dropout masks (module docstring). Build it with :meth:`from_plain`.

    Attributes:
        linear (callable): ``F.linear`` or ``accel.linear.onednn_linear``.
        masks (str, optional): dropout mask generator (``'numpy'`` or
            ``'numba'``); None for torch's dropout.
        fuse_qk (bool): one product for q and k when ``query is key``.
    """

    linear: LinearFn = staticmethod(F.linear)
    masks: Optional[str] = None
    fuse_qk: bool = True

    @classmethod
    def from_plain(cls, plain: DetrAttention, linear: LinearFn, masks: Optional[str],
                   fuse_qk: bool) -> 'FastDetrAttention':
        new = rebuild(cls, plain, plain.embed_dims, plain.num_heads, plain.attn_drop,
                      plain.keep_weights)
        new.linear, new.masks, new.fuse_qk = linear, masks, fuse_qk
        return new

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Optional[Tensor] = None,
                attn_mask: Optional[Tensor] = None,
                lengths: Optional[Sequence[int]] = None) -> Tensor:
        """As :meth:`DetrAttention.forward`; with ``lengths``, packed
        self-attention: query, key and value are [T, d] with the tokens of
        image i in rows ``sum(lengths[:i])`` to ``sum(lengths[:i + 1])``,
        no masks, -> [T, d]."""
        if lengths is not None and (query is not key or self.keep_weights):
            raise ValueError('packed attention is for self-attention (query is key) '
                             'without kept weights')
        d = self.embed_dims
        w, b = self.in_proj_weight, self.in_proj_bias
        if query is key and self.fuse_qk:
            q, k = self.linear(query, w[:2 * d], b[:2 * d]).chunk(2, dim=-1)
        else:
            q = self.linear(query, w[:d], b[:d])
            k = self.linear(key, w[d:2 * d], b[d:2 * d])
        v = self.linear(value, w[2 * d:], b[2 * d:])
        if lengths is not None:
            # each image alone: [L_i, d] -> [1, heads, L_i, d / heads] and back
            out = torch.cat([
                self.attend(*(self.split_heads(t[None]) for t in qkv), None)[0]
                for qkv in zip(q.split(lengths), k.split(lengths), v.split(lengths))
            ])  # [T, d]
        else:
            out = self.attend(self.split_heads(q), self.split_heads(k), self.split_heads(v),
                              allowed_pairs(key_padding_mask, attn_mask))
        return self.linear(out, self.out_proj.weight, self.out_proj.bias)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, allowed: Optional[Tensor]) -> Tensor:
        dropout_p = self.attn_drop if self.training else 0.
        if self.keep_weights or not (dropout_p > 0 and self.masks and q.device.type == 'cpu'):
            return super().attend(q, k, v, allowed)
        # scale q (not the [Lq, Lk] logits) and add the mask in place: no extra
        # pass or copy over the logits
        logits = torch.matmul(q * (1. / math.sqrt(self.head_dims)), k.transpose(-2, -1))
        if allowed is not None:
            bias = torch.zeros(allowed.shape, dtype=logits.dtype, device=logits.device)
            logits += bias.masked_fill_(~allowed, float('-inf'))  # small, broadcast
        weights = logits.softmax(dim=-1)  # [B, heads, Lq, Lk]
        # zero the dropped weights with a 0 / 1 mask and put the 1 / (1 - p)
        # scale on v, [Lk, d / heads], not on the [Lq, Lk] weights
        weights = weights * keep_mask(weights.shape, dropout_p, dtype=weights.dtype,
                                      generator=self.masks)
        return self.merge_heads(torch.matmul(weights, v * (1. / (1. - dropout_p))))


class FastDetrFFN(DetrFFN):
    """:class:`DetrFFN` computed in place on 2-D hiddens (module docstring).
    Build it with :meth:`from_plain`; attributes as :class:`FastDetrAttention`."""

    linear: LinearFn = staticmethod(F.linear)
    masks: Optional[str] = None

    @classmethod
    def from_plain(cls, plain: DetrFFN, linear: LinearFn,
                   masks: Optional[str]) -> 'FastDetrFFN':
        new = rebuild(cls, plain, plain.linear1.in_features, plain.linear1.out_features,
                      plain.dropout.p)
        new.linear, new.masks = linear, masks
        return new

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        l1, l2, p = self.linear1, self.linear2, self.dropout.p
        # on a 2-D input the hidden [B*L, F] is a tensor of its own, so the ReLU
        # can work in place on it (on a view it would cost copies in the backward)
        hidden = self.linear(x.reshape(-1, shape[-1]), l1.weight, l1.bias)  # [B*L, F]
        if self.training and p > 0 and self.masks and hidden.device.type == 'cpu':
            keep = keep_mask(hidden.shape, p, dtype=hidden.dtype, generator=self.masks)
            hidden = masked_relu_(hidden, keep)
            out = torch.add(l2.bias, self.linear(hidden, l2.weight, None), alpha=1. / (1. - p))
            return out.view(*shape[:-1], -1)
        hidden = self.dropout(masked_relu_(hidden))
        return self.linear(hidden, l2.weight, l2.bias).view(*shape[:-1], -1)


class PackedEncoderLayer(DetrEncoderLayer):
    """:class:`DetrEncoderLayer` that also runs packed tokens (``lengths``);
    its self-attention must be a :class:`FastDetrAttention`."""

    @classmethod
    def from_plain(cls, plain: DetrEncoderLayer) -> 'PackedEncoderLayer':
        return rebuild(cls, plain, plain.self_attn.embed_dims, plain.self_attn.num_heads,
                       plain.ffn.linear1.out_features, plain.dropout1.p, plain.pre_norm)

    def forward(self, x: Tensor, pos: Optional[Tensor], key_padding_mask: Optional[Tensor],
                lengths: Optional[Sequence[int]] = None) -> Tensor:
        """x, pos: [B, S, d] with ``key_padding_mask`` [B, S], or packed
        [T, d] with ``lengths`` and no mask -> the same shape."""
        if self.pre_norm:
            y = self.norm1(x)
            qk = with_pos(y, pos)
            x = x + self.dropout1(self.self_attn(qk, qk, y, key_padding_mask, lengths=lengths))
            return x + self.dropout2(self.ffn(self.norm2(x)))
        qk = with_pos(x, pos)
        x = self.norm1(x + self.dropout1(self.self_attn(qk, qk, x, key_padding_mask,
                                                        lengths=lengths)))
        return self.norm2(x + self.dropout2(self.ffn(x)))


class PackedEncoder(PluginDetrTransformerEncoder):
    """:class:`PluginDetrTransformerEncoder` on the valid tokens of a padded
    batch alone: the same outputs at valid positions, fewer FLOPs by the
    padded fraction, and 0 at padded positions (module docstring). A consumer
    that reads the memory at padded positions (convolutions over it as a
    feature map) should not use it."""

    @classmethod
    def from_plain(cls, plain: PluginDetrTransformerEncoder) -> 'PackedEncoder':
        layer = plain.layers[0]
        return rebuild(cls, plain, len(plain.layers), plain.embed_dims,
                       layer.self_attn.num_heads, layer.ffn.linear1.out_features,
                       layer.dropout1.p, plain.norm is not None, plain.init_cfg)

    def forward(self, query: Tensor, query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, **kwargs) -> Tensor:
        """query, query_pos: [B, S, d]; key_padding_mask: [B, S] -> memory [B, S, d]."""
        packing = self.packing(key_padding_mask)
        if packing is None:
            return super().forward(query, query_pos, key_padding_mask)
        index, lengths = packing
        batch_size, length, dims = query.shape
        x = query.reshape(-1, dims).index_select(0, index)  # [T, d], image after image
        pos = None if query_pos is None else query_pos.reshape(-1, dims).index_select(0, index)
        for layer in self.layers:
            x = layer(x, pos, None, lengths)
        if self.norm is not None:
            x = self.norm(x)
        memory = x.new_zeros(batch_size * length, dims).index_copy(0, index, x)
        return memory.view(batch_size, length, dims)

    def packing(self, key_padding_mask: Optional[Tensor]
                ) -> Optional[Tuple[Tensor, List[int]]]:
        """Flat indices [T] of the valid tokens of [B, S] and each image's
        count; None where packing saves nothing (no padding) or cannot be
        used (kept attention weights, tracing, compiling)."""
        if (key_padding_mask is None
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

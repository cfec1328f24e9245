"""The faster forms of the transformer's modules compute what the plain
ones compute: fused q/k projection, the in-place FFN with its dropout, the
explicit attention with the fast masks, packed sequences, and the encoder
that skips padding."""
import copy
import warnings

import pytest
import torch
import torch.nn.functional as F

from mmdet_detr_plugin.accel.dropout import FastDropout, keep_mask
from mmdet_detr_plugin.accel.linear import onednn_linear
from mmdet_detr_plugin.accel.transform import accelerate
from mmdet_detr_plugin.accel.transformer import (FastDetrAttention, FastDetrFFN, PackedEncoder,
                                                 PackedEncoderLayer)
from mmdet_detr_plugin.models.layers import DetrAttention, DetrFFN, PluginDetrTransformerEncoder


def fast_attention(plain, linear=F.linear, masks=None, fuse_qk=True):
    return FastDetrAttention.from_plain(copy.deepcopy(plain), linear, masks, fuse_qk)


@pytest.mark.parametrize('linear', [F.linear, onednn_linear])
def test_fast_attention_equals_plain(linear):
    torch.manual_seed(0)
    plain = DetrAttention(32, 4).eval()
    fast = fast_attention(plain, linear)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    q, k, v = torch.randn(2, 5, 32), torch.randn(2, 7, 32), torch.randn(2, 7, 32)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[1, 4:] = True
    assert torch.allclose(fast(q, k, v, mask), plain(q, k, v, mask), atol=1e-5)
    # self-attention: q and k projected in one product
    assert torch.allclose(fast(q, q, q), plain(q, q, q), atol=1e-5)


def test_attention_dropout_in_training_respects_masks():
    """Training on CPU with attention dropout takes the explicit path with
    the fast masks: padded keys and masked pairs still get nothing, and the
    mean over many masks gives the no-dropout output."""
    torch.manual_seed(0)
    attn = fast_attention(DetrAttention(16, 2, attn_drop=0.5), masks='numpy').train()
    q, k, v = torch.randn(1, 3, 16), torch.randn(1, 6, 16), torch.randn(1, 6, 16)
    padding = torch.tensor([[False] * 4 + [True] * 2])
    pairs = torch.zeros(3, 6, dtype=torch.bool)
    pairs[0, :2] = True  # query 0 may not see keys 0, 1
    v_changed = v.clone()
    v_changed[:, 4:] += 100.  # padded keys
    v_changed[:, :2] += 100.  # masked for query 0 only: its output must not move
    with torch.no_grad():
        torch.manual_seed(1)
        out = attn(q, k, v, padding, pairs)
        torch.manual_seed(1)
        out_changed = attn(q, k, v_changed, padding, pairs)
        assert torch.allclose(out[:, 0], out_changed[:, 0], atol=1e-5)
        assert not torch.allclose(out[:, 1:], out_changed[:, 1:], atol=1e-3)
        mean = torch.stack([attn(q, k, v, padding, pairs) for _ in range(4000)]).mean(0)
        expected = attn.eval()(q, k, v, padding, pairs)
    assert torch.allclose(mean, expected, atol=0.05)


def test_ffn_dropout_equals_the_reference_form_with_the_same_mask():
    """The fast FFN masks its hidden before an in-place ReLU and scales
    linear2's product; that must equal linear2(dropout(relu(linear1(x)))) with
    the same mask, values and gradients."""
    torch.manual_seed(0)
    plain = DetrFFN(16, 64, dropout=0.3)
    ffn = FastDetrFFN.from_plain(plain, F.linear, 'numpy').train()
    x = torch.randn(2, 5, 16, requires_grad=True)
    torch.manual_seed(7)
    out = ffn(x)
    out.square().sum().backward()
    grads = x.grad.clone(), ffn.linear1.weight.grad.clone(), ffn.linear2.weight.grad.clone()

    x.grad = None
    ffn.zero_grad()
    torch.manual_seed(7)
    drop = keep_mask((10, 64), 0.3).view(2, 5, 64) == 0  # the same draw as inside the FFN
    hidden = F.relu(ffn.linear1(x)).masked_fill(drop, 0.) / 0.7
    expected = ffn.linear2(hidden)
    expected.square().sum().backward()
    torch.testing.assert_close(out, expected)
    for got, ref in zip(grads, (x.grad, ffn.linear1.weight.grad, ffn.linear2.weight.grad)):
        torch.testing.assert_close(got, ref)
    assert 0.2 < drop.float().mean() < 0.4
    # evaluation: the plain FFN's output
    ffn.eval()
    with torch.no_grad():
        assert torch.allclose(ffn(x), plain.eval()(x), atol=1e-6)


def test_packed_self_attention_equals_each_image_alone():
    """Packed tokens [T, d] with lengths (3, 5): each image attends within
    itself, as if run alone; cross-attention cannot be packed."""
    torch.manual_seed(0)
    attn = fast_attention(DetrAttention(16, 2)).eval()
    x = torch.randn(8, 16)
    out = attn(x, x, x, lengths=[3, 5])
    assert out.shape == (8, 16)
    for rows in (slice(0, 3), slice(3, 8)):
        alone = x[None, rows]
        assert torch.allclose(out[rows], attn(alone, alone, alone)[0], atol=1e-6)
    with pytest.raises(ValueError, match='self-attention'):
        attn(x, x.clone(), x, lengths=[3, 5])


def encoders(**kwargs):
    """The same encoder, plain and skipping padded tokens."""
    torch.manual_seed(0)
    padded = PluginDetrTransformerEncoder(num_layers=2, embed_dims=32, num_heads=4,
                                          feedforward_channels=64, **kwargs).eval()
    packed = copy.deepcopy(padded)
    accelerate(packed, dict(base='reference', skip_padding=True))
    return packed, padded


def test_encoder_skipping_padding_changes_no_valid_output_or_gradient():
    """Image 1 padded at the end, image 2 on a grid (every third token):
    the packed run gives the padded run's outputs and input gradients at
    valid positions, and 0 at padded ones."""
    for pre_norm in (False, True):
        packed, padded = encoders(pre_norm=pre_norm)
        assert type(packed) is PluginDetrTransformerEncoder  # accelerate keeps the root
        x = torch.randn(3, 10, 32, requires_grad=True)
        pos = torch.randn(3, 10, 32)
        mask = torch.zeros(3, 10, dtype=torch.bool)
        mask[1, 6:] = True
        mask[2, ::3] = True
        valid = ~mask
        encoder = PackedEncoder.from_plain(packed)
        assert all(type(layer) is PackedEncoderLayer for layer in encoder.layers)
        out, expected = encoder(x, pos, mask), padded(x, pos, mask)
        assert torch.allclose(out[valid], expected[valid], atol=1e-6)
        assert out[mask].abs().max() == 0
        grad, = torch.autograd.grad(out[valid].square().sum(), x)
        grad_expected, = torch.autograd.grad(expected[valid].square().sum(), x)
        assert torch.allclose(grad, grad_expected, atol=1e-5)
        assert grad[mask].abs().max() == 0  # padded inputs reach no valid output


def test_encoder_keeps_the_padded_path_where_packing_saves_nothing():
    plain, padded = encoders()
    packed = PackedEncoder.from_plain(plain)
    x, pos = torch.randn(2, 6, 32), torch.randn(2, 6, 32)
    no_padding = torch.zeros(2, 6, dtype=torch.bool)
    assert packed.packing(no_padding) is None
    assert torch.allclose(packed(x, pos, no_padding), padded(x, pos, no_padding), atol=1e-6)
    all_padding = no_padding.clone()
    all_padding[1] = True  # an image with no valid token: as the reference
    assert packed.packing(all_padding) is None
    index, lengths = packed.packing(torch.tensor([[False, True, False], [True] * 2 + [False]]))
    assert index.tolist() == [0, 2, 5] and lengths == [2, 1]
    # a traced graph (FLOP counting, export) is static: the padded path
    padding = no_padding.clone()
    padding[1, 4:] = True
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # tracing's deprecation notice
        traced = torch.jit.trace(packed, (x, pos, padding), check_trace=False)
    assert torch.allclose(traced(x, pos, padding), padded(x, pos, padding), atol=1e-6)


def test_fast_dropout_replaces_torch_dropout_in_the_layers():
    torch.manual_seed(0)
    encoder = PluginDetrTransformerEncoder(num_layers=1, embed_dims=16, num_heads=2,
                                           feedforward_channels=32)
    accelerate(encoder, dict(base='reference', dropout='numpy'))
    layer = encoder.layers[0]
    assert type(layer.dropout1) is FastDropout and layer.dropout1.p == 0.1
    assert type(layer.ffn.dropout) is FastDropout

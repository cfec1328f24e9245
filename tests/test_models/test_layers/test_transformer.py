import warnings

import torch
from torch import nn

from mmdet_detr_plugin.models.layers import (DetrAttention, PluginDetrTransformerDecoder,
                                             PluginDetrTransformerEncoder)


def _copy_to_torch_mha(ours: DetrAttention) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(ours.embed_dims, ours.num_heads, batch_first=True)
    ref.load_state_dict(ours.state_dict(), strict=False)
    return ref.eval()


def test_attention_equals_torch_mha_with_padding():
    torch.manual_seed(0)
    attn = DetrAttention(32, 4).eval()
    ref = _copy_to_torch_mha(attn)
    q, k, v = torch.randn(2, 5, 32), torch.randn(2, 7, 32), torch.randn(2, 7, 32)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[1, 4:] = True
    expected = ref(q, k, v, key_padding_mask=mask, need_weights=False)[0]
    assert torch.allclose(attn(q, k, v, mask), expected, atol=1e-5)
    # the fused q/k projection (query is key) gives the same as separate ones
    assert torch.allclose(attn(q, q, q), ref(q, q, q, need_weights=False)[0], atol=1e-5)


def test_attention_weights_kept_and_masked():
    torch.manual_seed(0)
    attn = DetrAttention(16, 2, keep_weights=True).eval()
    ref = _copy_to_torch_mha(attn)
    q, k = torch.randn(1, 3, 16), torch.randn(1, 6, 16)
    mask = torch.tensor([[False] * 4 + [True] * 2])
    out = attn(q, k, k, mask)
    expected, weights = ref(q, k, k, key_padding_mask=mask, average_attn_weights=True)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(attn.last_weights, weights, atol=1e-6)
    assert attn.last_weights[..., 4:].abs().max() == 0


def test_attention_dropout_in_training_respects_masks():
    """Training on CPU with attention dropout takes the explicit path with
    the plugin's dropout: padded keys and masked pairs still get nothing,
    and averaging over many masks gives the no-dropout output."""
    torch.manual_seed(0)
    attn = DetrAttention(16, 2, attn_drop=0.5).train()
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


def _padded_vs_alone(module_fn):
    """Run a batch where image 1 is padded; its valid outputs must equal
    running it alone without padding."""
    torch.manual_seed(0)
    d, s_valid, s = 32, 6, 10
    x = torch.randn(2, s, d)
    pos = torch.randn(2, s, d)
    mask = torch.zeros(2, s, dtype=torch.bool)
    mask[1, s_valid:] = True
    batched = module_fn(x, pos, mask)
    alone = module_fn(x[1:, :s_valid], pos[1:, :s_valid], None)
    return batched, alone, s_valid


def test_encoder_honours_padding_mask():
    enc = PluginDetrTransformerEncoder(num_layers=2, embed_dims=32, num_heads=4,
                                       feedforward_channels=64).eval()
    batched, alone, s_valid = _padded_vs_alone(lambda x, p, m: enc(x, p, m))
    assert torch.allclose(batched[1, :s_valid], alone[0], atol=1e-5)


def test_packed_self_attention_equals_each_image_alone():
    """Packed tokens [T, d] with lengths (3, 5): each image attends within
    itself, as if run alone; cross-attention cannot be packed."""
    torch.manual_seed(0)
    attn = DetrAttention(16, 2).eval()
    x = torch.randn(8, 16)
    out = attn(x, x, x, lengths=[3, 5])
    assert out.shape == (8, 16)
    for rows in (slice(0, 3), slice(3, 8)):
        alone = x[None, rows]
        assert torch.allclose(out[rows], attn(alone, alone, alone)[0], atol=1e-6)
    try:
        attn(x, x.clone(), x, lengths=[3, 5])
    except ValueError as err:
        assert 'self-attention' in str(err)
    else:
        raise AssertionError('packed cross-attention was accepted')


def _encoders(**kwargs):
    """The same encoder with and without skipping padded tokens."""
    torch.manual_seed(0)
    packed = PluginDetrTransformerEncoder(num_layers=2, embed_dims=32, num_heads=4,
                                          feedforward_channels=64, **kwargs).eval()
    padded = PluginDetrTransformerEncoder(num_layers=2, embed_dims=32, num_heads=4,
                                          feedforward_channels=64, skip_padding=False,
                                          **kwargs).eval()
    padded.load_state_dict(packed.state_dict())
    return packed, padded


def test_encoder_skipping_padding_changes_no_valid_output_or_gradient():
    """Image 1 padded at the end, image 2 on a grid (every third token):
    the packed run gives the padded run's outputs and input gradients at
    valid positions, and 0 at padded ones."""
    for pre_norm in (False, True):
        packed, padded = _encoders(pre_norm=pre_norm)
        x = torch.randn(3, 10, 32, requires_grad=True)
        pos = torch.randn(3, 10, 32)
        mask = torch.zeros(3, 10, dtype=torch.bool)
        mask[1, 6:] = True
        mask[2, ::3] = True
        valid = ~mask
        out, expected = packed(x, pos, mask), padded(x, pos, mask)
        assert torch.allclose(out[valid], expected[valid], atol=1e-6)
        assert out[mask].abs().max() == 0
        grad, = torch.autograd.grad(out[valid].square().sum(), x)
        grad_expected, = torch.autograd.grad(expected[valid].square().sum(), x)
        assert torch.allclose(grad, grad_expected, atol=1e-5)
        assert grad[mask].abs().max() == 0  # padded inputs reach no valid output


def test_encoder_keeps_the_padded_path_where_packing_saves_nothing():
    packed, padded = _encoders()
    x, pos = torch.randn(2, 6, 32), torch.randn(2, 6, 32)
    no_padding = torch.zeros(2, 6, dtype=torch.bool)
    assert packed._packing(no_padding) is None
    assert torch.equal(packed(x, pos, no_padding), padded(x, pos, no_padding))
    all_padding = no_padding.clone()
    all_padding[1] = True  # an image with no valid token: as the reference
    assert packed._packing(all_padding) is None
    index, lengths = packed._packing(torch.tensor([[False, True, False], [True] * 2 + [False]]))
    assert index.tolist() == [0, 2, 5] and lengths == [2, 1]
    # a traced graph (FLOP counting, export) is static: the padded path
    padding = no_padding.clone()
    padding[1, 4:] = True
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # tracing's deprecation notice
        traced = torch.jit.trace(packed, (x, pos, padding), check_trace=False)
    assert torch.allclose(traced(x, pos, padding), padded(x, pos, padding), atol=1e-6)


def test_decoder_returns_every_layer_and_honours_padding():
    dec = PluginDetrTransformerDecoder(num_layers=3, embed_dims=32, num_heads=4,
                                       feedforward_channels=64).eval()
    queries = torch.randn(1, 4, 32)  # the same learned queries for every image

    def run(memory, pos, mask):
        b = memory.shape[0]
        return dec(torch.zeros(b, 4, 32), memory, memory, queries.expand(b, -1, -1), pos, mask)

    batched, alone, _ = _padded_vs_alone(run)
    assert batched.shape == (3, 2, 4, 32)
    assert torch.allclose(batched[:, 1], alone[:, 0], atol=1e-5)
    # every layer's output went through the shared final norm
    assert torch.allclose(batched.mean(-1), torch.zeros(3, 2, 4), atol=1e-5)


def test_pre_norm_and_no_self_attention_variants():
    enc = PluginDetrTransformerEncoder(num_layers=1, embed_dims=16, num_heads=2,
                                       feedforward_channels=32, pre_norm=True)
    assert enc.norm is not None
    dec = PluginDetrTransformerDecoder(num_layers=2, embed_dims=16, num_heads=2,
                                       feedforward_channels=32, self_attn=False,
                                       return_intermediate=False)
    assert not hasattr(dec.layers[0], 'self_attn')
    out = dec(torch.zeros(1, 3, 16), torch.randn(1, 5, 16), torch.randn(1, 5, 16),
              torch.randn(1, 3, 16), None)
    assert out.shape == (1, 1, 3, 16)

"""The reference transformer: attention equals torch's MultiheadAttention,
masks are honoured, every decoder layer is returned."""
import torch
from torch import nn

from mmdet_detr_plugin.models.layers import (DetrAttention, PluginDetrTransformerDecoder,
                                             PluginDetrTransformerEncoder)


def copy_to_torch_mha(ours: DetrAttention) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(ours.embed_dims, ours.num_heads, batch_first=True)
    ref.load_state_dict(ours.state_dict(), strict=False)
    return ref.eval()


def test_attention_equals_torch_mha_with_padding():
    torch.manual_seed(0)
    attn = DetrAttention(32, 4).eval()
    ref = copy_to_torch_mha(attn)
    q, k, v = torch.randn(2, 5, 32), torch.randn(2, 7, 32), torch.randn(2, 7, 32)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[1, 4:] = True
    expected = ref(q, k, v, key_padding_mask=mask, need_weights=False)[0]
    assert torch.allclose(attn(q, k, v, mask), expected, atol=1e-5)
    pairs = torch.zeros(5, 7, dtype=torch.bool)
    pairs[0, :3] = True
    expected = ref(q, k, v, key_padding_mask=mask, attn_mask=pairs, need_weights=False)[0]
    assert torch.allclose(attn(q, k, v, mask, pairs), expected, atol=1e-5)


def test_attention_weights_kept_and_masked():
    torch.manual_seed(0)
    attn = DetrAttention(16, 2, keep_weights=True).eval()
    ref = copy_to_torch_mha(attn)
    q, k = torch.randn(1, 3, 16), torch.randn(1, 6, 16)
    mask = torch.tensor([[False] * 4 + [True] * 2])
    out = attn(q, k, k, mask)
    expected, weights = ref(q, k, k, key_padding_mask=mask, average_attn_weights=True)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(attn.last_weights, weights, atol=1e-6)
    assert attn.last_weights[..., 4:].abs().max() == 0


def padded_vs_alone(module_fn):
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
    batched, alone, s_valid = padded_vs_alone(lambda x, p, m: enc(x, p, m))
    assert torch.allclose(batched[1, :s_valid], alone[0], atol=1e-5)


def test_decoder_returns_every_layer_and_honours_padding():
    dec = PluginDetrTransformerDecoder(num_layers=3, embed_dims=32, num_heads=4,
                                       feedforward_channels=64).eval()
    queries = torch.randn(1, 4, 32)  # the same learned queries for every image

    def run(memory, pos, mask):
        b = memory.shape[0]
        return dec(torch.zeros(b, 4, 32), memory, memory, queries.expand(b, -1, -1), pos, mask)

    batched, alone, _ = padded_vs_alone(run)
    assert batched.shape == (3, 2, 4, 32)
    assert torch.allclose(batched[:, 1], alone[:, 0], atol=1e-5)
    # every layer's output went through the shared final norm
    assert torch.allclose(batched.mean(-1), torch.zeros(3, 2, 4), atol=1e-5)


def test_layers_are_the_reference_computation():
    """Post-norm encoder layer written out: norm1(x + attn(x + pos, x + pos, x)),
    then norm2(x + linear2(relu(linear1(x))))."""
    torch.manual_seed(0)
    enc = PluginDetrTransformerEncoder(num_layers=1, embed_dims=16, num_heads=2,
                                       feedforward_channels=32).eval()
    layer = enc.layers[0]
    x, pos = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    ref = copy_to_torch_mha(layer.self_attn)
    y = layer.norm1(x + ref(x + pos, x + pos, x, need_weights=False)[0])
    y = layer.norm2(y + layer.ffn.linear2(torch.relu(layer.ffn.linear1(y))))
    assert torch.allclose(enc(x, pos), y, atol=1e-5)
    assert type(layer.ffn.linear1) is nn.Linear and type(layer.dropout1) is nn.Dropout


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

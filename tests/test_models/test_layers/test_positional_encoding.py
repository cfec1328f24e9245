import math

import pytest
import torch

from mmdet_detr_plugin.models.layers import (PluginLearnedPositionalEncoding,
                                             PluginSinePositionalEncoding)


def test_sine_values_at_known_positions():
    enc = PluginSinePositionalEncoding(num_feats=4, temperature=10000, normalize=True)
    mask = torch.zeros(1, 2, 4, dtype=torch.bool)  # h=2, w=4, no padding
    pos = enc(mask)  # [1, 8, 2, 4]
    assert pos.shape == (1, 8, 2, 4)
    eps, scale = 1e-6, 2 * math.pi
    # pixel (y=1, x=2): counts 2 of 2 rows, 3 of 4 columns
    y, x = 2 / (2 + eps) * scale, 3 / (4 + eps) * scale
    dim_t = [1., 1., 100., 100.]  # 10000 ** (2 * (i // 2) / 4)
    expected_y = [math.sin(y / dim_t[0]), math.cos(y / dim_t[1]),
                  math.sin(y / dim_t[2]), math.cos(y / dim_t[3])]
    expected_x = [math.sin(x / dim_t[0]), math.cos(x / dim_t[1]),
                  math.sin(x / dim_t[2]), math.cos(x / dim_t[3])]
    assert pos[0, :, 1, 2].tolist() == pytest.approx(expected_y + expected_x, abs=1e-6)


def test_sine_mask_none_equals_zero_mask():
    enc = PluginSinePositionalEncoding(num_feats=8)
    feat = torch.zeros(2, 16, 3, 5)
    assert torch.equal(enc(None, input=feat), enc(torch.zeros(2, 3, 5, dtype=torch.bool)))


def test_sine_padding_does_not_shift_valid_pixels():
    """A padded image is encoded as if it stood alone."""
    enc = PluginSinePositionalEncoding(num_feats=8)
    mask = torch.zeros(1, 4, 6, dtype=torch.bool)
    mask[:, 3:, :] = True
    mask[:, :, 4:] = True
    padded = enc(mask)[..., :3, :4]
    alone = enc(torch.zeros(1, 3, 4, dtype=torch.bool))
    assert torch.allclose(padded, alone, atol=1e-6)


def test_sine_matches_mmdet():
    mmdet_pe = pytest.importorskip('mmdet.models.layers').SinePositionalEncoding
    ref = mmdet_pe(num_feats=128, normalize=True)
    ours = PluginSinePositionalEncoding(num_feats=128, normalize=True)
    mask = torch.zeros(2, 7, 9, dtype=torch.bool)
    mask[1, 5:] = True
    assert torch.allclose(ours(mask), ref(mask), atol=1e-6)


def test_learned_layout_and_size_check():
    enc = PluginLearnedPositionalEncoding(num_feats=4, row_num_embed=5, col_num_embed=6)
    pos = enc(torch.zeros(2, 3, 4, dtype=torch.bool))
    assert pos.shape == (2, 8, 3, 4)
    # x (columns) first, then y (rows)
    assert torch.equal(pos[0, :4, 2, 1], enc.col_embed.weight[1])
    assert torch.equal(pos[0, 4:, 2, 1], enc.row_embed.weight[2])
    with pytest.raises(ValueError, match='row_num_embed'):
        enc(torch.zeros(1, 6, 4, dtype=torch.bool))

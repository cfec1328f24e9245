"""The fast CPU dropout masks: rate, scale, independence, repeatability,
and the compiled generator bit for bit against SplitMix64."""
import importlib.util

import pytest
import torch
import torch.nn.functional as F

from mmdet_detr_plugin.accel.dropout import FastDropout, keep_mask, masked_relu_

HAS_NUMBA = importlib.util.find_spec('numba') is not None


@pytest.fixture(params=['numba', 'numpy'])
def generator(request):
    """Run the test with each generator of the mask's random bits."""
    if request.param == 'numba' and not HAS_NUMBA:
        pytest.skip('numba is not installed')
    return request.param


def dropout(x, p, training, generator='numpy'):
    return FastDropout(p, generator).train(training)(x)


@pytest.mark.parametrize('p', [0.1, 0.5])
def test_mask_rate_scale_and_gradient(generator, p):
    torch.manual_seed(0)
    x = torch.rand(1000, 1000) + 0.5  # no zeros: a zero output means dropped
    x.requires_grad_(True)
    y = dropout(x, p, True, generator)
    kept = y != 0
    # 1e6 Bernoulli draws: the kept fraction is within 5 standard deviations
    sd = (p * (1 - p) / kept.numel())**0.5
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * sd
    torch.testing.assert_close(y[kept], x.detach()[kept] / (1 - p))
    # the backward keeps the mask alone: a float one, scale where kept
    saved = [t for t in (y.grad_fn._saved_self, y.grad_fn._saved_other) if t is not None]
    assert len(saved) == 1 and saved[0].dtype == torch.float32
    assert saved[0].unique().tolist() == [0., pytest.approx(1. / (1 - p))]
    grad = torch.randn_like(y)
    y.backward(grad)
    torch.testing.assert_close(x.grad, grad * kept / (1 - p))


def test_rows_and_columns_are_not_correlated(generator):
    # the mask comes from 64-bit words split in four, into neighbours (numpy)
    # or elements 1024 apart (numba): all must be independent
    torch.manual_seed(1)
    kept = (dropout(torch.ones(4000, 250), 0.5, True, generator) != 0).float().flatten()
    for gap in (1, 2, 3, 4, 1023, 1024, 2048, 3072):  # within a word, and across words
        pairs = kept[:-gap] * kept[gap:]
        assert abs(pairs.mean().item() - 0.25) < 5 * (0.25 * 0.75 / pairs.numel())**0.5


def test_repeatable_with_torch_seed_and_fresh_per_call(generator):
    x = torch.ones(64, 64)
    torch.manual_seed(3)
    a, b = dropout(x, 0.1, True, generator), dropout(x, 0.1, True, generator)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.1, True, generator), a)
    assert not torch.equal(a, b)


def test_identity_outside_training_and_edge_rates():
    x = torch.randn(8, 8)
    assert dropout(x, 0.1, False) is x
    assert dropout(x, 0., True) is x
    assert torch.equal(dropout(x, 1., True), F.dropout(x, 1., True))  # all zeros
    y = dropout(x.to(torch.bfloat16), 0.1, True)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape


def test_mask_values_rate_and_resolution(generator):
    torch.manual_seed(0)
    # odd size: part of a last 64-bit word
    mask = keep_mask((3, 1001, 999), 0.1, generator=generator)
    assert mask.shape == (3, 1001, 999) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) == {0., 1.}
    sd = (0.1 * 0.9 / mask.numel())**0.5
    assert abs(1 - mask.mean().item() - 0.1) < 5 * sd
    # 16 bits per element: rates closer than 2^-17 to 0 or 1 round to them
    assert keep_mask((1000, ), 2.**-18, generator=generator).min() == 1
    assert keep_mask((1000, ), 1 - 2.**-18, generator=generator).max() == 0
    scaled = keep_mask((4, 4), 0.25, scale=4 / 3, dtype=torch.bfloat16, generator=generator)
    assert scaled.dtype == torch.bfloat16
    assert set(scaled.float().unique().tolist()) <= {0., torch.tensor(4 / 3).bfloat16().item()}


@pytest.mark.parametrize('with_mask', [False, True])
def test_masked_relu_matches_relu_of_the_masked_input(with_mask):
    torch.manual_seed(0)
    a = torch.randn(50, 40, requires_grad=True)
    keep = keep_mask(a.shape, 0.3) if with_mask else None
    grad = torch.randn(50, 40)
    hidden = a * 2  # a tensor no backward needs, like a linear layer's output
    out = masked_relu_(hidden, keep)
    assert out.data_ptr() == hidden.data_ptr()  # in place
    out.backward(grad)
    got = a.grad.clone()
    a.grad = None
    ref = F.relu(a * 2 * (keep if with_mask else 1))
    ref.backward(grad)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(got, a.grad, rtol=0, atol=0)


def _mix64(z: int) -> int:
    """SplitMix64's output function (Steele, Lea and Flood 2014), in Python."""
    mask = (1 << 64) - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


@pytest.mark.skipif(not HAS_NUMBA, reason='numba is not installed')
def test_compiled_generator_against_splitmix64_in_python():
    import numpy as np
    gamma = 0x9E3779B97F4A7C15
    # the published first output of SplitMix64 seeded 0
    assert _mix64(gamma) == 0xE220A8397B1DCDAF
    threshold = 40000  # p = 40000 / 65536 exactly
    torch.manual_seed(12345)
    seed = int(torch.randint(0, 2**62, (1, )))  # the draw keep_mask makes
    torch.manual_seed(12345)
    n = 2 * 4096 + 37  # two full blocks and a partial one
    out = keep_mask((n, ), threshold / 65536, scale=2., generator='numba').numpy()
    expected = np.empty(n, np.float32)
    for i in range(n):
        block, offset = divmod(i, 4096)
        if block < 2:  # lane l, position j: bits 16 l.. of the block's word j
            lane, j = divmod(offset, 1024)
            bits = _mix64((seed + (block * 1024 + j) * gamma) % 2**64) >> (16 * lane)
        else:  # partial block: one word per element
            bits = _mix64((seed + (2 * 1024 + offset) * gamma) % 2**64)
        expected[i] = 2. if (bits & 0xFFFF) >= threshold else 0.
    np.testing.assert_array_equal(out, expected)


@pytest.mark.skipif(not HAS_NUMBA, reason='numba is not installed')
def test_compiled_mask_does_not_depend_on_the_threads():
    threads = torch.get_num_threads()
    try:
        masks = []
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.manual_seed(5)
            masks.append(keep_mask((300, 700), 0.1, generator='numba'))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(*masks)


def test_generator_choice_is_checked(monkeypatch):
    with pytest.raises(ValueError, match="one of \\('numpy', 'numba'\\), got 'mt19937'"):
        FastDropout(0.1, 'mt19937')
    monkeypatch.setitem(__import__('sys').modules, 'numba', None)  # as if not installed
    with pytest.raises(ImportError, match="model.accel.dropout='numba'.*pip install numba"):
        FastDropout(0.1, 'numba')

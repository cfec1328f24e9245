"""onednn_linear(): F.linear's values and gradients, through oneDNN where it applies."""
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmdet_detr_plugin.accel.linear import (MIN_MACS, OneDnnLinear, onednn_available,
                                            onednn_linear)

needs_onednn = pytest.mark.skipif(not onednn_available(),
                                  reason='this PyTorch build has no oneDNN linear op')
# small products on the oneDNN path, as the model's large ones
linear = partial(onednn_linear, min_macs=0)


def _float64_reference(x, weight, bias, grad):
    """Output and gradients (x, weight, bias) of F.linear in float64."""
    leaves = [t.detach().double().requires_grad_() for t in (x, weight, bias)]
    out = F.linear(*leaves)
    out.backward(grad.double())
    return out.detach(), [t.grad for t in leaves]


@needs_onednn
@pytest.mark.parametrize('in_dims,out_dims', [(64, 512), (512, 64), (96, 96), (7, 3)])
@pytest.mark.parametrize('batch_shape', [(40, ), (2, 30)])
def test_values_and_gradients_match_float64(in_dims, out_dims, batch_shape):
    # out > in and out <= in take different forms of the weight gradient
    torch.manual_seed(0)
    x = torch.randn(*batch_shape, in_dims, requires_grad=True)
    weight = (torch.randn(out_dims, in_dims) / in_dims**0.5).requires_grad_()
    bias = torch.randn(out_dims, requires_grad=True)
    grad = torch.randn(*batch_shape, out_dims)
    out = linear(x, weight, bias)
    assert out.grad_fn.name() == '_OneDnnLinearBackward'
    out.backward(grad)
    ref_out, ref_grads = _float64_reference(x, weight, bias, grad)
    # float32 rounding of sums of up to 512 (forward) or 60 (weight) terms of size ~1
    torch.testing.assert_close(out.double(), ref_out, rtol=0, atol=2e-5)
    for got, ref in zip((x.grad, weight.grad, bias.grad), ref_grads):
        assert got.shape == ref.shape and got.dtype == torch.float32
        torch.testing.assert_close(got.double(), ref, rtol=0, atol=5e-5)


@needs_onednn
def test_strided_inputs_sliced_weight_and_no_bias():
    # attention projects with row slices of in_proj_weight; the FFN's second
    # product has no bias; inputs may be transposed views
    torch.manual_seed(1)
    full = torch.randn(96, 32, requires_grad=True)
    x = torch.randn(32, 50).t().requires_grad_()  # [50, 32], column-major
    grad = torch.randn(50, 64)
    out = linear(x, full[:64])
    out.backward(grad)
    x64, w64 = x.detach().double(), full.detach().double()[:64]
    torch.testing.assert_close(out.double(), x64 @ w64.t(), rtol=0, atol=2e-5)
    torch.testing.assert_close(x.grad.double(), grad.double() @ w64, rtol=0, atol=2e-5)
    torch.testing.assert_close(full.grad[:64].double(), grad.double().t() @ x64,
                               rtol=0, atol=5e-5)
    assert full.grad[64:].abs().max() == 0


@needs_onednn
def test_only_the_gradients_asked_for():
    x = torch.randn(5, 8)
    weight = torch.randn(4, 8, requires_grad=True)
    bias = torch.randn(4)  # no grad
    linear(x, weight, bias).sum().backward()
    torch.testing.assert_close(weight.grad, x.sum(0).expand(4, 8), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # no autograd node at all
        assert linear(x, weight, bias).grad_fn is None


@pytest.mark.parametrize('case', ['float64', 'autocast', 'tracing', 'mkldnn off'])
def test_falls_back_to_f_linear(case):
    torch.manual_seed(2)
    x, weight, bias = torch.randn(6, 16), torch.randn(8, 16), torch.randn(8)
    if case == 'float64':
        x, weight, bias = x.double(), weight.double(), bias.double()
    expected = F.linear(x, weight, bias)
    if case == 'autocast':
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = linear(x, weight, bias)
        assert out.dtype == torch.bfloat16
        with torch.autocast('cpu', dtype=torch.bfloat16):
            expected = F.linear(x, weight, bias)
    elif case == 'tracing':
        traced = torch.jit.trace(lambda t: linear(t, weight, bias), (x, ))
        assert 'aten::linear' in str(traced.graph) and 'mkldnn' not in str(traced.graph)
        out = traced(x)
    elif case == 'mkldnn off':
        with torch.backends.mkldnn.flags(enabled=False):
            out = linear(x, weight, bias)
    else:
        out = linear(x, weight, bias)
    assert torch.equal(out, expected)  # the very same op: bit for bit


@needs_onednn
def test_small_products_take_f_linear():
    # below MIN_MACS multiply-adds the call's fixed cost outweighs oneDNN's gain
    weight = torch.randn(64, 64, requires_grad=True)
    rows = MIN_MACS // (64 * 64)
    small = onednn_linear(torch.randn(rows - 1, 64), weight)
    large = onednn_linear(torch.randn(rows, 64), weight)
    assert small.grad_fn.name() != '_OneDnnLinearBackward'
    assert large.grad_fn.name() == '_OneDnnLinearBackward'


def test_module_is_nn_linear_with_the_same_keys_and_values():
    torch.manual_seed(3)
    layer, plain = OneDnnLinear(16, 8), nn.Linear(16, 8)
    assert isinstance(layer, nn.Linear)
    assert layer.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(300, 16)
    torch.testing.assert_close(layer(x), plain(x), rtol=1e-6, atol=1e-6)

"""get_flops counts the plugin's fused attention like mmdet's unfused one."""
import torch
from mmengine.analysis import FlopAnalyzer

from mmdet.registry import MODELS
from mmdet_detr_plugin.converters import plugin_to_mmdet
from mmdet_detr_plugin.utils.flops import register_sdpa_flops

from conftest import make_batch


class _Tensors(torch.nn.Module):
    """Trace the detector's tensor mode with fixed data samples."""

    def __init__(self, model, samples):
        super().__init__()
        self.model = model
        self.samples = samples

    def forward(self, inputs):
        return self.model._forward(inputs, self.samples)


def test_plugin_and_mmdet_detr_have_the_same_flops(small_plugin_cfg, small_mmdet_cfg):
    register_sdpa_flops()
    torch.manual_seed(0)
    # unfolded, so the batch norms are counted as mmdet's are (folding is below)
    plugin = MODELS.build(dict(small_plugin_cfg, accel=dict(fold_frozen_bn=False))).eval()
    mmdet = MODELS.build(small_mmdet_cfg).eval()
    mmdet.load_state_dict(plugin_to_mmdet(plugin.state_dict()))
    inputs, samples = make_batch([(64, 96)], num_gts=[1])
    ours = FlopAnalyzer(_Tensors(plugin, samples), (inputs, ))
    theirs = FlopAnalyzer(_Tensors(mmdet, samples), (inputs, ))
    # attention alone: 3 + 2 + 3 attention calls; the feature map is 2 x 3 = 6 tokens
    # encoder self: 6 x 6, decoder self: 10 x 10, cross: 10 x 6; d = 64 (heads x head dims)
    attn = 2 * (6 * 6 * 128) + 3 * (10 * 10 * 128 + 10 * 6 * 128)
    by_op = ours.by_operator()
    assert by_op['scaled_dot_product_attention'] == attn
    assert ours.total() == theirs.total()

    # folded into the convolutions, the frozen batch norms cost nothing more:
    # the count drops by exactly mmdet's batch-norm count
    folded = MODELS.build(small_plugin_cfg).eval()
    folded.load_state_dict(plugin.state_dict())
    folded_count = FlopAnalyzer(_Tensors(folded, samples), (inputs, ))
    batch_norm = theirs.by_operator()['batch_norm']
    assert batch_norm > 0 and 'batch_norm' not in folded_count.by_operator()
    assert folded_count.total() == theirs.total() - batch_norm

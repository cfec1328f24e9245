"""ONNX export (``mmdet_detr_plugin.deploy``): the graph computes what
``PluginDETR.predict`` computes, the exported file agrees with it in ONNX
Runtime for batch 1, a padded batch and a size not seen at export, and what
cannot be exported is refused with an error that names it."""
import copy
import sys

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_batch
from mmdet.registry import MODELS
from mmdet_detr_plugin.models.dense_heads.detr_head import PluginDETRHead
from mmdet_detr_plugin.deploy import (ONNXRuntimeDETR, PluginDETRExport, check_exportable,
                                      export_onnx, sample_inputs)

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)


def demo_like_cfg(small_cfg: dict) -> dict:
    """The small test DETR with the demo's parts: anchor points in groups
    under denoising, focal classification, the mmdet preprocessor."""
    cfg = copy.deepcopy(small_cfg)
    cfg['queries'] = dict(type='PluginDenoisingQueries',
                          queries=dict(type='PluginAnchorPointQueries', num_groups=2))
    cfg['bbox_head']['criterion'] = dict(type='PluginSetCriterion', cls_loss='focal')
    cfg['train_cfg'] = dict(assigner=dict(type='PluginHungarianAssigner', match_costs=[
        dict(type='PluginFocalLossCost', weight=2.0), dict(type='PluginBBoxL1Cost', weight=5.0),
        dict(type='PluginIoUCost', weight=2.0)]))
    cfg['test_cfg'] = dict(max_per_img=6)
    cfg['data_preprocessor'] = dict(type='DetDataPreprocessor', mean=MEAN.flatten().tolist(),
                                    std=STD.flatten().tolist(), bgr_to_rgb=True)
    cfg['accel'] = 'reference'
    return cfg


def build(cfg: dict) -> nn.Module:
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    with torch.no_grad():  # spread the scores: no near-ties between queries
        model.bbox_head.fc_cls.weight.mul_(20)
    return model.eval()


def raw_batch(shapes, seed=0):
    """0-255 BGR images padded top-left with junk (the graph must hide it)
    and their valid sizes."""
    gen = torch.Generator().manual_seed(seed)
    height, width = max(h for h, _ in shapes), max(w for _, w in shapes)
    images = torch.rand(len(shapes), 3, height, width, generator=gen) * 255
    return images, torch.tensor(shapes, dtype=torch.int64)


def predict_like_mmdet(model, images, sizes):
    """PluginDETR.predict on what DetDataPreprocessor makes of the batch."""
    inputs = (images.flip(1) - MEAN) / STD
    samples = make_batch([tuple(s) for s in sizes.tolist()], [0] * len(sizes))[1]
    for i, (h, w) in enumerate(sizes.tolist()):
        inputs[i, :, h:] = 0
        inputs[i, :, :, w:] = 0
        samples[i].set_metainfo(dict(batch_input_shape=tuple(images.shape[-2:])))
    with torch.no_grad():
        return [s.pred_instances for s in model.predict(inputs, samples, rescale=False)]


@pytest.fixture(scope='module')
def model():
    from conftest import SMALL_PLUGIN_DETR
    return build(demo_like_cfg(SMALL_PLUGIN_DETR))


@pytest.fixture(scope='module')
def exported(model, tmp_path_factory):
    """The model exported once with dynamic batch and size, traced on a
    padded batch of two 96 x 128 images."""
    path = str(tmp_path_factory.mktemp('onnx') / 'detr.onnx')
    images, sizes = sample_inputs((96, 128), 2)
    export_onnx(PluginDETRExport(model).eval(), path, images, sizes, dynamic=True,
                metadata=dict(note='test'))
    return path


def test_graph_computes_what_predict_computes(model):
    """Padded batch: same boxes (input pixels), scores and labels as
    PluginDETR.predict on the preprocessed batch."""
    images, sizes = raw_batch([(96, 128), (64, 80)])
    with torch.no_grad():
        boxes, scores, labels = PluginDETRExport(model)(images, sizes)
    want = predict_like_mmdet(model, images, sizes)
    assert boxes.shape == (2, 6, 4) and scores.shape == (2, 6) and labels.dtype == torch.int64
    for b, pred in enumerate(want):
        assert torch.allclose(scores[b], pred.scores, atol=1e-6)
        assert torch.equal(labels[b], pred.labels)
        assert torch.allclose(boxes[b], pred.bboxes, atol=1e-4)
    # the padding's values do not matter
    junk = images.clone()
    junk[1, :, 64:] = 0
    junk[1, :, :, 80:] = 7
    with torch.no_grad():
        again = PluginDETRExport(model)(junk, sizes)
    assert torch.allclose(again[1], scores, atol=1e-6)


@pytest.mark.parametrize('shapes', [
    [(96, 128)],  # batch 1, the traced size
    [(96, 128), (72, 100)],  # a padded batch of two sizes
    [(64, 160), (80, 96), (48, 48)],  # sizes and a batch size not seen at export
])
def test_onnxruntime_agrees_with_pytorch(model, exported, shapes):
    images, sizes = raw_batch(shapes, seed=len(shapes))
    with torch.no_grad():
        want = [t.numpy() for t in PluginDETRExport(model)(images, sizes)]
    got = ONNXRuntimeDETR(exported)(images.numpy(), sizes.numpy())
    assert list(got) == ['boxes', 'scores', 'labels']
    scale = np.tile(sizes.numpy()[:, None, ::-1], (1, 1, 2))  # boxes / (w, h, w, h)
    assert np.abs(got['boxes'] / scale - want[0] / scale).max() < 1e-4
    assert np.abs(got['scores'] - want[1]).max() < 1e-4
    assert np.array_equal(got['labels'], want[2])


def test_raw_outputs_and_metadata(model, exported, tmp_path):
    runner = ONNXRuntimeDETR(exported)
    assert runner.session.get_modelmeta().custom_metadata_map['note'] == 'test'
    assert not runner.raw
    path = str(tmp_path / 'raw.onnx')
    wrapper = PluginDETRExport(model, raw=True).eval()
    images, sizes = sample_inputs((64, 64), 1)  # static: batch 1, 64 x 64
    export_onnx(wrapper, path, images, sizes, dynamic=False)
    got = ONNXRuntimeDETR(path)
    assert got.raw and got.output_names == ['cls_logits', 'boxes']
    out = got(images.numpy(), sizes.numpy())
    with torch.no_grad():
        logits, boxes = wrapper(images, sizes)
    assert out['cls_logits'].shape == (1, 10, 6) and out['boxes'].shape == (1, 10, 4)
    assert np.abs(out['cls_logits'] - logits.numpy()).max() < 1e-4
    assert np.abs(out['boxes'] - boxes.numpy()).max() < 1e-5


@MODELS.register_module()
class _DataDependentNeck(nn.Module):
    """A neck whose Python branch reads a tensor's value: not traceable."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, feats):
        x = self.proj(feats[-1])
        if float(x.mean()) > 1e9:
            x = x * 2
        return (x, )


def test_a_part_that_cannot_be_exported_is_named(tmp_path):
    from conftest import SMALL_PLUGIN_DETR
    cfg = copy.deepcopy(SMALL_PLUGIN_DETR)
    cfg['neck'] = dict(type='_DataDependentNeck', in_channels=512, out_channels=64)
    cfg['accel'] = 'reference'
    wrapper = PluginDETRExport(build(cfg)).eval()
    images, sizes = sample_inputs((64, 64), 2)
    with pytest.raises(RuntimeError, match=r'model\.neck \(type=_DataDependentNeck\) cannot '
                                           r'be exported to ONNX'):
        export_onnx(wrapper, str(tmp_path / 'x.onnx'), images, sizes)


@MODELS.register_module()
class _HeadWithItsOwnPredict(PluginDETRHead):
    """A head whose predictions are not PluginDETRHead's boxes (as the
    panoptic head's masks)."""

    def predict(self, *args, **kwargs):
        raise NotImplementedError


def test_models_outside_the_graph_are_refused(small_plugin_cfg):
    cfg = copy.deepcopy(small_plugin_cfg)
    cfg['bbox_head']['type'] = '_HeadWithItsOwnPredict'
    with pytest.raises(TypeError, match=r'model.bbox_head \(type=_HeadWithItsOwnPredict\) '
                                        'cannot be exported'):
        PluginDETRExport(MODELS.build(cfg))
    with pytest.raises(TypeError, match=r'model.type=Linear cannot be exported'):
        check_exportable(nn.Linear(2, 2))


def test_missing_packages_are_named(monkeypatch, exported):
    from mmdet_detr_plugin.deploy.export import require_exporter
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    with pytest.raises(ImportError, match='onnxruntime is not installed.*pip install onnx '
                                          'onnxscript onnxruntime'):
        ONNXRuntimeDETR(exported)
    monkeypatch.setitem(sys.modules, 'onnxscript', None)
    with pytest.raises(ImportError, match='ONNX export needs onnxscript'):
        require_exporter()


def test_wrong_files_are_refused(tmp_path, exported):
    with pytest.raises(FileNotFoundError, match='ONNX model not found'):
        ONNXRuntimeDETR(str(tmp_path / 'none.onnx'))
    from mmdet_detr_plugin.deploy import PluginONNXRuntimeDetector
    detector = PluginONNXRuntimeDetector(exported,
                                         data_preprocessor=dict(type='DetDataPreprocessor'))
    with pytest.raises(ValueError, match="mode='loss' is not available"):
        detector(torch.zeros(1, 3, 8, 8), [], mode='loss')

"""tools/deployment/pytorch2onnx.py, then tools/test.py and tools/demo.py
with ``--backend onnxruntime``, run as a user runs them on the toy set: the
exported demo model gets the PyTorch model's COCO AP and predictions."""
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

from test_train_test_resume import run_tool, toy_root  # noqa: F401  (fixture)

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')
CONFIG = 'configs/detr_r18_toy.py'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """The toy config's model with fixed random weights (class scores spread
    so that queries do not tie), saved as mmengine saves checkpoints."""
    from mmengine.config import Config

    from mmdet.registry import MODELS
    cfg = Config.fromfile(CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        model.bbox_head.fc_cls.weight.mul_(20)
    path = str(tmp_path_factory.mktemp('ckpt') / 'toy.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def load_predictions(path):
    with open(path, 'rb') as f:
        return sorted(pickle.load(f), key=lambda r: r['img_id'])


@pytest.mark.slow
def test_export_then_evaluate_and_draw_with_onnxruntime(checkpoint, toy_root,  # noqa: F811
                                                        tmp_path):
    onnx_file, report = str(tmp_path / 'toy.onnx'), str(tmp_path / 'export.json')
    out = run_tool('tools/deployment/pytorch2onnx.py', CONFIG, checkpoint, '--out', onnx_file,
                   '--dynamic', '--json', report)
    assert 'dynamic shapes' in out
    with open(report) as f:
        diffs = json.load(f)['max_abs_diff']
    assert diffs['scores'] < 1e-4 and diffs['boxes'] < 1e-3 and diffs['labels'] == 0

    # the toy set here is 96 px (resized to 128 by the pipeline): evaluated in batches of 16
    results = {}
    for backend, model_file in (('pytorch', checkpoint), ('onnxruntime', onnx_file)):
        work = str(tmp_path / backend)
        out = run_tool('tools/test.py', CONFIG, model_file, '--backend', backend, '--work-dir',
                       work, '--out', osp.join(work, 'preds.pkl'), '--cfg-options',
                       f'data_root={toy_root}')
        results[backend] = (float(out.split('coco/bbox_mAP: ')[1].split()[0]),
                            load_predictions(osp.join(work, 'preds.pkl')))
    (ap_torch, preds_torch), (ap_ort, preds_ort) = results['pytorch'], results['onnxruntime']
    assert ap_ort == ap_torch
    assert len(preds_ort) == len(preds_torch) == 8
    for want, got in zip(preds_torch, preds_ort):
        w, g = want['pred_instances'], got['pred_instances']
        assert np.abs(np.asarray(g['scores']) - np.asarray(w['scores'])).max() < 1e-4
        assert np.array_equal(np.asarray(g['labels']), np.asarray(w['labels']))
        assert np.abs(np.asarray(g['bboxes']) - np.asarray(w['bboxes'])).max() < 1e-2  # px

    pictures = str(tmp_path / 'pictures')
    out = run_tool('tools/demo.py', osp.join(toy_root, 'val'), CONFIG, onnx_file, '--backend',
                   'onnxruntime', '--out-dir', pictures, '--max-images', '2', '--score-thr', '0')
    assert out.count(' boxes') == 2 and osp.isfile(osp.join(pictures, '000001.png'))


def load_tool(name, path):
    """A tool's module, imported as its script imports (tools/ on the path)."""
    import importlib.util
    import sys
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    sys.path.insert(0, osp.join(repo, 'tools'))
    spec = importlib.util.spec_from_file_location(name, osp.join(repo, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_checkpoint_of_another_model_is_refused(checkpoint):
    from mmengine.config import Config
    tool = load_tool('pytorch2onnx', 'tools/deployment/pytorch2onnx.py')
    cfg = Config.fromfile('configs/detr_r50_8xb2-150e_coco.py')
    with pytest.raises(Exception, match='the checkpoint does not fit PluginDETR|does not match'):
        tool.build_detector(cfg, checkpoint)


def test_the_onnxruntime_backend_wants_an_onnx_file(checkpoint):
    from argparse import Namespace

    from mmengine.config import Config
    tool = load_tool('test_tool', 'tools/test.py')
    cfg = Config.fromfile(CONFIG)
    with pytest.raises(ValueError, match='takes an exported .onnx model'):
        tool.use_onnxruntime(cfg, Namespace(checkpoint=checkpoint, launcher='none',
                                            num_threads=None))
    with pytest.raises(ValueError, match='runs in one process'):
        tool.use_onnxruntime(cfg, Namespace(checkpoint='m.onnx', launcher='pytorch',
                                            num_threads=None))
    tool.use_onnxruntime(cfg, Namespace(checkpoint='m.onnx', launcher='none', num_threads=2))
    assert cfg.model.type == 'PluginONNXRuntimeDetector' and cfg.load_from is None
    pre = cfg.model.data_preprocessor
    assert 'mean' not in pre and pre.bgr_to_rgb is False and pre.pad_value == 0


def test_compare_predictions(tmp_path):
    tool = load_tool('compare_predictions', 'tools/deployment/compare_predictions.py')

    def dump(name, shift, label):
        path = str(tmp_path / name)
        with open(path, 'wb') as f:
            pickle.dump([dict(img_id=i, pred_instances=dict(
                scores=np.array([0.9, 0.5]) + shift, labels=np.array([1, label]),
                bboxes=np.array([[0., 0., 10., 10.], [5., 5., 20., 30.]]) + 10 * shift))
                for i in (3, 1)], f)
        return path
    out = str(tmp_path / 'cmp.json')
    result = tool.main([dump('a.pkl', 0., 2), dump('b.pkl', 1e-3, 0), '--json', out])
    assert result == dict(images=2, predictions=4, max_score_diff=pytest.approx(1e-3),
                          max_box_diff_px=pytest.approx(1e-2), differing_labels=2)
    with open(out) as f:
        assert json.load(f)['differing_labels'] == 2

"""mmdet's DetInferencer on the plugin's configs: predictions, drawn pictures, and the same
numbers as ``inference_detector`` and the model's own ``predict``."""
import json
import os
import os.path as osp
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.runner import load_checkpoint

from mmdet.apis import DetInferencer, inference_detector, init_detector
from mmdet.datasets import CocoDataset
from mmdet.registry import MODELS
from mmdet_detr_plugin.datasets import make_toy_coco

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOY = osp.join(REPO, 'configs', 'detr_r18_toy.py')
R50 = osp.join(REPO, 'configs', 'detr_r50_8xb2-150e_coco.py')
# width and height of the test pictures: not square, not a multiple of the strides
WIDTH, HEIGHT = 120, 88


def save_random_checkpoint(config: str, path: str, classes) -> str:
    """The config's model, randomly initialised (seed 0, no pretrained backbone), saved as
    a checkpoint with its class names (``meta.dataset_meta``, as mmengine writes them)."""
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=tuple(classes)))), path)
    return path


@pytest.fixture(scope='module')
def pictures(tmp_path_factory):
    root = tmp_path_factory.mktemp('pictures')
    make_toy_coco(str(root), num_train=0, num_val=2, img_size=(HEIGHT, WIDTH), seed=0)
    return [str(root / 'val' / f'00000{i}.png') for i in (1, 2)]


@pytest.fixture(scope='module')
def toy_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('toy_ckpt') / 'toy.pth')
    return save_random_checkpoint(TOY, path, Config.fromfile(TOY).classes)


def own_predict(config: str, checkpoint: str, image: str):
    """The plugin model's ``predict`` on the config's test pipeline (no annotations)."""
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu')
    model.eval()
    steps = [t for t in cfg.test_dataloader.dataset.pipeline if t.type != 'LoadAnnotations']
    data = pseudo_collate([Compose(steps)(dict(img_path=image, img_id=0))])
    with torch.no_grad():
        data = model.data_preprocessor(data, False)
        return model.predict(data['inputs'], data['data_samples'], rescale=True)[0]


def assert_same_instances(a, b, atol: float = 1e-5) -> None:
    """Two ``pred_instances``: same labels, boxes and scores within ``atol``."""
    assert torch.equal(a.labels, b.labels)
    torch.testing.assert_close(a.bboxes, b.bboxes, atol=atol, rtol=0)
    torch.testing.assert_close(a.scores, b.scores, atol=atol, rtol=0)


def check_inferencer(config: str, checkpoint: str, image: str, out_dir: str,
                     num_classes: int, max_per_img: int):
    """Run DetInferencer once; check what it returns and writes against
    inference_detector and the model's own predict."""
    inferencer = DetInferencer(model=config, weights=checkpoint, device='cpu')
    result = inferencer(image, out_dir=out_dir, no_save_pred=False, pred_score_thr=0.0,
                        return_datasamples=False)
    [pred] = result['predictions']
    assert set(pred) == {'labels', 'scores', 'bboxes'}
    assert len(pred['labels']) == len(pred['scores']) == len(pred['bboxes']) == max_per_img
    labels, scores = np.array(pred['labels']), np.array(pred['scores'])
    boxes = np.array(pred['bboxes'])  # [max_per_img, 4], x1 y1 x2 y2 in the image's pixels
    assert ((0 <= labels) & (labels < num_classes)).all()
    assert ((0 <= scores) & (scores <= 1)).all() and (np.diff(scores) <= 0).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 0] <= boxes[:, 2]).all()
    assert (boxes[:, 1] <= boxes[:, 3]).all()
    assert (boxes[:, 2] <= WIDTH).all() and (boxes[:, 3] <= HEIGHT).all()

    # the picture drawn and the predictions saved, under out_dir
    name = osp.splitext(osp.basename(image))[0]
    drawn = mmcv.imread(osp.join(out_dir, 'vis', f'{name}.png'))
    assert drawn.shape == (HEIGHT, WIDTH, 3)
    assert not np.array_equal(drawn, mmcv.imread(image))  # boxes were drawn on it
    with open(osp.join(out_dir, 'preds', f'{name}.json')) as f:
        assert json.load(f) == pred

    # as data samples: the numbers of inference_detector and of the model's predict
    [sample] = inferencer(image, return_datasamples=True, no_save_vis=True)['predictions']
    model = init_detector(config, checkpoint, device='cpu')
    expected = inference_detector(model, image)
    assert_same_instances(sample.pred_instances, expected.pred_instances)
    assert_same_instances(sample.pred_instances,
                          own_predict(config, checkpoint, image).pred_instances)
    np.testing.assert_allclose(boxes, expected.pred_instances.bboxes.numpy(), atol=1e-5)
    assert model.dataset_meta['classes'] == inferencer.model.dataset_meta['classes']
    return inferencer


def test_det_inferencer_runs_the_toy_config(toy_checkpoint, pictures, tmp_path):
    inferencer = check_inferencer(TOY, toy_checkpoint, pictures[0], str(tmp_path),
                                  num_classes=4, max_per_img=10)
    assert inferencer.model.dataset_meta['classes'] == ('circle', 'square', 'triangle',
                                                        'cross')
    # an image array (BGR, as mmcv reads it) gives the same result as its file
    [from_file] = inferencer(pictures[0], return_datasamples=True)['predictions']
    [from_array] = inferencer(mmcv.imread(pictures[0]), return_datasamples=True)['predictions']
    assert_same_instances(from_file.pred_instances, from_array.pred_instances)
    # two images in one batch: each as alone (same size, so no padding differs)
    batch = inferencer(pictures, batch_size=2, return_datasamples=True)['predictions']
    for image, sample in zip(pictures, batch):
        [alone] = inferencer(image, return_datasamples=True)['predictions']
        assert_same_instances(sample.pred_instances, alone.pred_instances, atol=1e-4)


def test_config_alone_loads_the_plugin(toy_checkpoint, pictures):
    """A fresh interpreter that never imports the plugin: the config's custom_imports does."""
    code = ('import json, sys\n'
            'from mmdet.apis import DetInferencer\n'
            'inf = DetInferencer(model=sys.argv[1], weights=sys.argv[2], device="cpu")\n'
            'pred = inf(sys.argv[3])["predictions"][0]\n'
            'print(json.dumps([type(inf.model).__name__, pred["scores"]]))\n')
    proc = subprocess.run([sys.executable, '-c', code, TOY, toy_checkpoint, pictures[0]],
                          capture_output=True, text=True, timeout=300,
                          cwd=osp.dirname(pictures[0]), env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 0, proc.stderr[-3000:]
    model_type, scores = json.loads(proc.stdout.strip().splitlines()[-1])
    assert model_type == 'PluginDETR'
    model = init_detector(TOY, toy_checkpoint, device='cpu')
    expected = inference_detector(model, pictures[0]).pred_instances.scores.numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5)


@pytest.mark.slow
def test_det_inferencer_runs_the_r50_coco_config(pictures, tmp_path):
    """The R50 COCO config with random weights (the image is resized to 800 x 1091)."""
    ckpt = save_random_checkpoint(R50, str(tmp_path / 'r50.pth'), CocoDataset.METAINFO['classes'])
    inferencer = check_inferencer(R50, ckpt, pictures[1], str(tmp_path / 'out'),
                                  num_classes=80, max_per_img=100)
    assert len(inferencer.model.dataset_meta['classes']) == 80

"""Attention maps, query specialisation and tools/demo.py on a toy model."""
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmdet.registry import MODELS
from mmdet_detr_plugin.apis import (attention_to_image, collect_query_boxes,
                                    plot_query_centres, predict_with_attention)

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'test_tools'))
from test_train_test_resume import CONFIG, REPO, toy_root  # noqa: E402,F401


def test_attention_lands_on_its_cell_in_a_non_square_image():
    # feature map 3 x 5 (stride 32) of a padded 96 x 160 input holding a
    # 90 x 150 image that was resized from 45 x 75
    weights = torch.zeros(1, 15)
    weights[0, 1 * 5 + 3] = 1.0  # cell (row 1, column 3)
    maps = attention_to_image(weights, (3, 5), (90, 150), (96, 160), (45, 75))
    assert maps.shape == (1, 45, 75)
    assert maps.max() == pytest.approx(1.0)
    y, x = np.unravel_index(maps[0].argmax().item(), (45, 75))
    # the cell covers input rows 32..63, columns 96..127: original rows 16..31, columns 48..63
    assert 16 <= y < 32 and 48 <= x < 64
    assert maps[0, :8, :30].max() < 0.05  # far from the cell: nothing


@pytest.fixture(scope='module')
def toy_model_files(tmp_path_factory, toy_root):  # noqa: F811
    """A randomly initialised toy model saved as a checkpoint, with its config."""
    tmp = tmp_path_factory.mktemp('toy_model')
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({'data_root': toy_root})
    from mmdet_detr_plugin.utils.config import apply_data_root
    apply_data_root(cfg, toy_root, 'data/toy/')
    cfg_path = str(tmp / 'toy.py')
    cfg.dump(cfg_path)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    ckpt = str(tmp / 'toy.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=cfg.classes))), ckpt)
    return cfg_path, ckpt, toy_root


def test_predict_with_attention_matches_decoder_weights(toy_model_files):
    from mmdet.apis import init_detector
    cfg_path, ckpt, root = toy_model_files
    model = init_detector(cfg_path, ckpt, device='cpu')
    image = osp.join(root, 'val', '000001.png')
    result, maps = predict_with_attention(model, image)
    pred = result.pred_instances
    assert maps.shape == (len(pred.scores), 96, 96)
    assert torch.allclose(maps.flatten(1).max(1).values, torch.ones(len(maps)))
    assert model.decoder.layers[-1].cross_attn.keep_weights is False  # switched back off
    # the same predictions as without attention
    from mmdet.apis import inference_detector
    plain = inference_detector(model, image).pred_instances
    assert torch.allclose(plain.scores, pred.scores, atol=1e-6)


def test_query_boxes_and_plot(toy_model_files, tmp_path):
    cfg_path, ckpt, _ = toy_model_files
    cfg = Config.fromfile(cfg_path)
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(ckpt)['state_dict'])
    loader = Runner.build_dataloader(cfg.test_dataloader)
    boxes = collect_query_boxes(model, loader, max_images=5)
    assert boxes.shape == (cfg.model.num_queries, 5, 4)
    assert boxes.min() >= 0 and boxes.max() <= 1
    # query q's box in image 0 is the head's box of query q (clamped to the image)
    data = next(iter(loader))
    with torch.no_grad():
        data = model.data_preprocessor(data, False)
        _, raw = model._forward(data['inputs'], data['data_samples'])
    cx = raw[-1, 0, :, 0]
    inside = (raw[-1, 0, :, 0] - raw[-1, 0, :, 2] / 2 > 0) & \
        (raw[-1, 0, :, 0] + raw[-1, 0, :, 2] / 2 < 1)
    assert torch.allclose(boxes[inside, 0, 0], cx[inside], atol=1e-4)
    out = str(tmp_path / 'queries.png')
    plot_query_centres(boxes, out, max_panels=4)
    assert osp.getsize(out) > 10000


def test_demo_tool_writes_boxes_and_attention(toy_model_files, tmp_path):
    cfg_path, ckpt, root = toy_model_files
    out_dir = str(tmp_path / 'pictures')
    proc = subprocess.run([sys.executable, 'tools/demo.py', osp.join(root, 'val'), cfg_path,
                           ckpt, '--out-dir', out_dir, '--max-images', '2', '--score-thr', '0',
                           '--attention'], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import mmcv
    boxes = mmcv.imread(osp.join(out_dir, '000001.png'))
    assert boxes.shape[:2] == (96, 96)
    assert osp.getsize(osp.join(out_dir, '000001_attention.png')) > 10000

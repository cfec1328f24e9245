"""Every config under configs/ builds and runs loss, predict and tensor modes."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmdet.registry import MODELS
from mmdet.structures.mask import BitmapMasks

from conftest import make_batch

CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', '..', 'configs')
CONFIGS = sorted(osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
# the panoptic recipe's backbone variants differ from the R50 mask stage (run by default) only
# in the backbone, which the box configs' tests cover: built and run in the slow set, their
# settings checked in test_panoptic_recipe_settings
SLOW_CONFIGS = ('detr_r50_8xb2-500e_coco-panoptic.py', 'detr_r50-dc5_8xb2-500e_coco-panoptic.py',
                'detr_r101_8xb2-500e_coco-panoptic.py',
                'detr-panoptic_r50-dc5_8xb2-25e_coco-panoptic.py',
                'detr-panoptic_r101_8xb2-25e_coco-panoptic.py')


def test_all_configs_found():
    for name in ('detr_r50_coco.py', 'detr_r50_8xb2-150e_coco.py', 'detr_r50_8xb2-500e_coco.py',
                 'detr_r101_8xb2-500e_coco.py', 'detr_r50-dc5_8xb2-500e_coco.py',
                 'detr_r18_8xb2-500e_coco.py'):
        assert name in CONFIGS


@pytest.mark.parametrize('name', [
    pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CONFIGS else n for n in CONFIGS])
def test_config_builds_and_runs(name):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    assert cfg.custom_imports['imports'] == ['mmdet_detr_plugin']
    backbone = cfg.model.backbone
    if (backbone.get('init_cfg') or {}).get('type') == 'Pretrained':
        # the ImageNet weights are the users' own (mmcv's model zoo names), the
        # toy UP-DETR's frozen backbone comes from its demo; the test never loads them
        checkpoint = backbone.init_cfg.checkpoint
        assert (checkpoint.split(':')[0] == 'torchvision'
                or checkpoint.startswith('work_dirs/updetr_demo/')), checkpoint
        backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    num_classes = cfg.model.bbox_head.num_classes
    pretraining = cfg.model.type == 'PluginUPDETR'
    num_gts = [cfg.model.queries.num_patches] * 2 if pretraining else [2, 3]
    inputs, samples = make_batch([(64, 96), (80, 64)], num_gts=num_gts, num_classes=num_classes)
    if pretraining:  # UP-DETR: the patches of each image
        for s in samples:
            s.query_patches = torch.randint(0, 256, (num_gts[0], 3, 32, 32), dtype=torch.uint8)
    panoptic = cfg.model.type == 'PluginDETRPanoptic'
    if panoptic:  # every segment a box and a mask (its box filled)
        for s in samples:
            h, w = s.img_shape
            masks = np.zeros((len(s.gt_instances), h, w), np.uint8)
            for mask, (x1, y1, x2, y2) in zip(masks, s.gt_instances.bboxes.int().tolist()):
                mask[y1:y2 + 1, x1:x2 + 1] = 1
            s.gt_instances.masks = BitmapMasks(masks, h, w)

    model.train()
    losses = model(inputs, samples, mode='loss')
    num_layers = cfg.model.decoder.num_layers
    if panoptic and cfg.model.freeze_detector:  # the mask stage: mask losses only
        assert set(losses) == {'loss_mask', 'loss_dice'}
    else:
        denoising = cfg.model.queries.type == 'PluginDenoisingQueries'  # dn_loss_* as well
        encoder_head = 3 if cfg.model.get('encoder_head') else 0  # ATSS: enc.loss_* x 3
        assert len(losses) == ((4 if pretraining else 3) * num_layers * (1 + denoising)
                               + 2 * panoptic + encoder_head)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()

    model.eval()
    with torch.no_grad():
        results = model(inputs, samples, mode='predict')
        cls_scores, bbox_preds, *masks = model(inputs, samples, mode='tensor')
    max_per_img = cfg.model.test_cfg.max_per_img
    assert len(results) == 2
    if panoptic:  # things only, with masks; and the panoptic map
        num_things = cfg.model.bbox_head.num_things_classes
        assert (results[0].pred_instances.labels < num_things).all()
        assert results[0].pred_panoptic_seg.sem_seg.shape == (1, 64, 96)
        assert masks[0].shape[:2] == (2, cfg.model.num_queries)
    else:
        assert results[0].pred_instances.bboxes.shape == (
            min(max_per_img, cfg.model.num_queries), 4)
    assert cls_scores.shape == (num_layers, 2, cfg.model.num_queries, num_classes + 1)
    assert bbox_preds.shape == (num_layers, 2, cfg.model.num_queries, 4)
    assert ((bbox_preds >= 0) & (bbox_preds <= 1)).all()


def test_paper_recipe_settings():
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'detr_r50_8xb2-150e_coco.py'))
    optim = cfg.optim_wrapper
    assert optim.optimizer.type == 'AdamW' and optim.optimizer.lr == 1e-4
    assert optim.optimizer.weight_decay == 1e-4
    assert optim.clip_grad.max_norm == 0.1
    assert optim.paramwise_cfg.custom_keys['backbone'].lr_mult == 0.1
    assert cfg.model.num_queries == 100
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.param_scheduler[0].milestones == [100]
    cfg500 = Config.fromfile(osp.join(CONFIG_DIR, 'detr_r50_8xb2-500e_coco.py'))
    assert cfg500.train_cfg.max_epochs == 500 and cfg500.param_scheduler[0].milestones == [400]
    dc5 = Config.fromfile(osp.join(CONFIG_DIR, 'detr_r50-dc5_8xb2-500e_coco.py'))
    assert dc5.model.backbone.dilations == (1, 1, 1, 2)


def test_panoptic_recipe_settings():
    """Stage 1 trains boxes on the 133 panoptic classes; stage 2 freezes it, reads C2..C5,
    trains 25 epochs with the drop at 15 and is scored by PQ and box / mask AP."""
    for backbone in ('r50', 'r50-dc5', 'r101'):
        boxes = Config.fromfile(osp.join(CONFIG_DIR, f'detr_{backbone}_8xb2-500e_coco-panoptic.py'))
        masks = Config.fromfile(osp.join(CONFIG_DIR,
                                         f'detr-panoptic_{backbone}_8xb2-25e_coco-panoptic.py'))
        assert boxes.model.type == 'PluginDETR' and boxes.model.bbox_head.num_classes == 133
        assert boxes.train_dataloader.dataset.type == 'PluginCocoPanopticDataset'
        assert boxes.train_dataloader.dataset.pipeline[1].type == 'PluginLoadPanopticAnnotations'
        assert masks.model.freeze_detector and masks.model.backbone.out_indices == (0, 1, 2, 3)
        assert masks.model.bbox_head.num_things_classes == 80
        assert masks.model.backbone.get('depth') == (101 if backbone == 'r101' else 50)
        assert masks.model.backbone.get('dilations', (1, 1, 1, 1))[-1] == (
            2 if backbone == 'r50-dc5' else 1)
        assert boxes.model.backbone.get('depth') == masks.model.backbone.get('depth')
        assert masks.load_from == f'work_dirs/detr_{backbone}_8xb2-500e_coco-panoptic/epoch_500.pth'
        assert masks.train_cfg.max_epochs == 25 and masks.param_scheduler[0].milestones == [15]
        assert [e.type for e in masks.val_evaluator] == ['CocoPanopticMetric', 'CocoMetric']
        assert masks.model.test_cfg.panoptic.score_thr == 0.85

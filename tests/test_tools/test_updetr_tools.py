"""UP-DETR as a user runs it: tools/train.py pre-trains on a folder of
unlabeled images, then fine-tunes from the checkpoint (small CPU runs of the
toy configs); the R50 configs build and run a loss step."""
import json
import os.path as osp
import runpy
import shutil
import sys

import pytest
import torch
from mmengine.config import Config

from test_train_test_resume import REPO, run_tool, scalars

FAST = ['train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'default_hooks.logger.interval=1',
        'model.backbone.init_cfg=None', 'train_cfg.max_iters=2',
        'default_hooks.checkpoint.interval=2']


def test_pretrain_on_a_folder_then_fine_tune(tmp_path, monkeypatch):
    from mmdet_detr_plugin.datasets import make_toy_coco
    unlabeled, labeled = tmp_path / 'unlabeled', tmp_path / 'labeled'
    make_toy_coco(str(unlabeled), num_train=12, num_val=0, img_size=96, seed=1)
    shutil.rmtree(unlabeled / 'annotations')  # images only, in nested folders
    (unlabeled / 'train' / 'more').mkdir()
    for name in ('000001.png', '000002.png'):
        shutil.move(str(unlabeled / 'train' / name), str(unlabeled / 'train' / 'more' / name))
    make_toy_coco(str(labeled), num_train=8, num_val=4, img_size=96, seed=2)

    pre = str(tmp_path / 'pretrain')
    out = run_tool('tools/train.py', osp.join(REPO, 'configs', 'up-detr-pretrain_r18_toy.py'),
                   '--work-dir', pre, '--cfg-options', f'data_root={unlabeled}/', *FAST)
    losses = [row for row in scalars(pre) if 'loss' in row]
    assert [row['iter'] for row in losses] == [1, 2]
    assert all(row['loss_feature'] > 0 and row['d1.loss_feature'] > 0 for row in losses)
    ckpt = osp.join(pre, 'iter_2.pth')
    state = torch.load(ckpt, weights_only=True)['state_dict']
    assert state['queries.patch2query.weight'].shape == (128, 128)
    assert state['bbox_head.feature_align.layers.1.weight'].shape == (128, 128)

    fine = str(tmp_path / 'finetune')
    out = run_tool('tools/train.py', osp.join(REPO, 'configs', 'up-detr_r18_toy.py'),
                   '--work-dir', fine, '--cfg-options', f'data_root={labeled}/',
                   f'load_from={ckpt}', 'train_cfg.val_interval=2',
                   'val_dataloader.batch_size=4', 'val_dataloader.num_workers=0',
                   'val_dataloader.persistent_workers=False', *FAST)
    assert 'UP-DETR pre-training checkpoint: dropped' in out
    for name in ('bbox_head.fc_cls', 'bbox_head.feature_align.layers.0', 'queries.patch2query'):
        assert name in out
    assert 'coco/bbox_mAP' in out
    assert 'unexpected key' not in out and 'missing keys' not in out

    # the pretext task drawn, and the curve tool on the fine-tuning run
    pictures = tmp_path / 'pictures'
    out = run_tool('tools/analysis_tools/draw_query_patches.py',
                   osp.join(REPO, 'configs', 'up-detr-pretrain_r18_toy.py'), ckpt,
                   '--out-dir', str(pictures), '--num-images', '2', '--cfg-options',
                   f'train_dataloader.dataset.data_root={unlabeled}/',
                   'model.backbone.init_cfg=None')
    summary = json.loads((pictures / 'summary.json').read_text())
    assert summary['num_patches'] == 10 and len(summary['images']) == 2
    assert all(0 <= iou <= 1 for image in summary['images'] for iou in image['iou'])
    assert len(list(pictures.glob('*.png'))) == 2
    doc = tmp_path / 'doc.md'
    doc.write_text('before\n<!-- updetr-curves -->\nold\n<!-- /updetr-curves -->\nafter\n')
    monkeypatch.setattr(sys, 'argv', [
        'updetr_curves.py', '--arm', 'up-detr', fine, '--arm', 'copy', fine, '--json',
        str(tmp_path / 'curves.json'), '--plot', str(tmp_path / 'curves.png'), '--markdown',
        str(doc)])
    runpy.run_path(osp.join(REPO, 'tools', 'analysis_tools', 'updetr_curves.py'),
                   run_name='__main__')
    curves = json.loads((tmp_path / 'curves.json').read_text())
    value = [r for r in scalars(fine) if 'coco/bbox_mAP' in r][-1]['coco/bbox_mAP']
    assert curves['summary']['up-detr'][-1]['coco/bbox_mAP']['mean'] == value
    text = doc.read_text()
    assert text.startswith('before\n') and text.endswith('after\n') and 'old' not in text
    assert f'| 2 | {value:.3f} | {value:.3f} |' in text  # one run per arm: no spread


def test_r50_configs_are_the_reference_recipe():
    """(test_configs.py builds them and runs a loss step.)"""
    pre = Config.fromfile(osp.join(REPO, 'configs', 'up-detr-pretrain_r50_8xb32-60e_in1k.py'))
    assert pre.model.type == 'PluginUPDETR' and pre.model.freeze_backbone
    assert pre.model.queries.num_patches == 10 and pre.model.num_queries == 100
    assert pre.model.queries.feature_dropout == 0.1 and not pre.model.queries.shuffle
    assert pre.model.encoder.pre_norm and pre.model.decoder.pre_norm
    crit = pre.model.bbox_head.criterion
    assert (crit.no_object_weight, crit.loss_cls_weight, crit.loss_bbox_weight,
            crit.loss_iou_weight, crit.loss_feature_weight) == (0.1, 1.0, 5.0, 2.0, 1.0)
    costs = [c.weight for c in pre.model.train_cfg.assigner.match_costs]
    assert costs == [1.0, 5.0, 2.0]
    patches = [t for t in pre.train_pipeline if t.type == 'PluginRandomQueryPatches'][0]
    assert (patches.num_patches, patches.min_size, patches.patch_size) == (10, 8, 128)
    resize = [t for t in pre.train_pipeline if t.type == 'RandomChoiceResize'][0]
    assert {s[1] for s in resize.scales} == set(range(320, 481, 16))
    assert {s[0] for s in resize.scales} == {600}
    assert pre.optim_wrapper.optimizer.lr == 1e-4 and pre.optim_wrapper.clip_grad.max_norm == 0.1
    assert pre.train_dataloader.batch_size == 32 and pre.auto_scale_lr.base_batch_size == 256
    assert pre.train_cfg.max_epochs == 60 and pre.param_scheduler[0].milestones == [40]
    fine = Config.fromfile(osp.join(REPO, 'configs', 'up-detr_r50_8xb2-300e_coco.py'))
    assert fine.model.reset_classifier and fine.model.encoder.pre_norm
    assert fine.train_cfg.max_epochs == 300 and fine.param_scheduler[0].milestones == [200]
    backbone_lr = (fine.optim_wrapper.optimizer.lr
                   * fine.optim_wrapper.paramwise_cfg.custom_keys['backbone'].lr_mult)
    assert backbone_lr == pytest.approx(5e-5)

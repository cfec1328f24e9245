# UP-DETR pre-training (Dai et al. 2021) on a folder of unlabeled toy images, on a CPU:
# the transformer learns to find random patches of the images; the backbone stays fixed.
# `bash scripts/updetr_demo.sh` runs everything: a backbone trained on a labeled toy set,
# this pre-training, and fine-tuning from it against fine-tuning from scratch (docs/up_detr.md).
#   python tools/train.py configs/up-detr-pretrain_r18_toy.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=BACKBONE.pth
# The toy recipe against the reference's (configs/up-detr-pretrain_r50_8xb32-60e_in1k.py):
# the toy DETR's half-width ResNet-18 to C4 (128 channels) instead of ResNet-50, d=128 and
# 3 + 3 layers, 20 queries for 5 patches (4 per patch; the reference: 100 for 10), patches
# resized to 32 px (128), images resized to a shorter side of 96-128 px (320-480), batch 8,
# AdamW 2e-4 with a warm-up, clip 1.0. Pre-norm transformer, losses and weights as the reference.
_base_ = [
    './_base_/models/detr_r50.py',
    './_base_/default_runtime.py',
]

data_root = 'data/updetr-toy/unlabeled/'
num_queries = 20
num_patches = 5
feature_channels = 128  # the backbone's last output (C4 of the half-width ResNet-18)

model = dict(
    type='PluginUPDETR',
    num_queries=num_queries,
    freeze_backbone=True,
    queries=dict(_delete_=True, type='PluginPatchQueries', num_patches=num_patches,
                 feature_channels=feature_channels, feature_dropout=0.1, shuffle=False),
    # the frozen backbone: a checkpoint of configs/detr_r18_toy.py trained on labeled images
    backbone=dict(depth=18, base_channels=32, num_stages=3, strides=(1, 2, 2),
                  dilations=(1, 1, 1), out_indices=(2, ), frozen_stages=3,
                  norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True,
                  init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                checkpoint='work_dirs/updetr_demo/backbone/iter_1400.pth')),
    neck=dict(in_channels=feature_channels, out_channels=128),
    positional_encoding=dict(num_feats=64),
    encoder=dict(num_layers=3, embed_dims=128, num_heads=8, feedforward_channels=512,
                 dropout=0.0, pre_norm=True),
    decoder=dict(num_layers=3, embed_dims=128, num_heads=8, feedforward_channels=512,
                 dropout=0.0, pre_norm=True),
    bbox_head=dict(_delete_=True, type='PluginUPDETRHead', num_classes=1, embed_dims=128,
                   feature_channels=feature_channels,
                   criterion=dict(type='PluginSetCriterion', no_object_weight=0.1,
                                  loss_cls_weight=1.0, loss_bbox_weight=5.0,
                                  loss_iou_weight=2.0, loss_feature_weight=1.0)),
    test_cfg=dict(max_per_img=num_queries))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PluginRandomQueryPatches', num_patches=num_patches, min_size=8, patch_size=32),
    dict(type='RandomChoiceResize', scales=[(128, s) for s in range(96, 129, 8)],
         keep_ratio=True),
    dict(type='PluginPackQueryPatchInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    # no AspectRatioBatchSampler: the folder does not know image sizes without reading them
    dataset=dict(type='PluginImageFolderDataset', data_root=data_root,
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
# pre-training has no validation
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None

max_iters = 3000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 2 / 3)], gamma=0.1),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=2,
                    save_last=True))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)

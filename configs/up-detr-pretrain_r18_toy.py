# UP-DETR pre-training (Dai et al. 2021) on a folder of unlabeled toy images, on a CPU:
# the transformer learns to find random patches of the images; the backbone stays fixed.
# `bash scripts/updetr_demo.sh` runs everything: a backbone trained on a labeled toy set,
# this pre-training, and fine-tuning from it against fine-tuning from scratch (docs/up_detr.md).
#   python tools/train.py configs/up-detr-pretrain_r18_toy.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=BACKBONE.pth
# The toy recipe against the reference's (the base config): the toy DETR's half-width
# ResNet-18 to C4 (128 channels) instead of ResNet-50, d=128 and 3 + 3 layers, 20 queries for
# 5 patches (4 per patch; the reference: 100 for 10), patches resized to 32 px (128), images
# resized to a shorter side of 96-128 px (320-480), batch 8, 3000 steps of AdamW 2e-4 with a
# warm-up, clip 1.0. Pre-norm transformer, losses and weights as the reference.
_base_ = './up-detr-pretrain_r50_8xb32-60e_in1k.py'

data_root = 'data/updetr-toy/unlabeled/'
num_queries = 20
num_patches = 5
feature_channels = 128  # the backbone's last output (C4 of the half-width ResNet-18)

model = dict(
    num_queries=num_queries,
    queries=dict(num_patches=num_patches, feature_channels=feature_channels),
    # the frozen backbone: a checkpoint of configs/detr_r18-c4_toy.py trained on labeled images
    backbone=dict(depth=18, base_channels=32, num_stages=3, strides=(1, 2, 2),
                  dilations=(1, 1, 1), out_indices=(2, ), frozen_stages=3,
                  init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                checkpoint='work_dirs/updetr_demo/backbone/iter_1400.pth')),
    neck=dict(in_channels=feature_channels, out_channels=128),
    positional_encoding=dict(num_feats=64),
    encoder=dict(num_layers=3, embed_dims=128, num_heads=8, feedforward_channels=512,
                 dropout=0.0),
    decoder=dict(num_layers=3, embed_dims=128, num_heads=8, feedforward_channels=512,
                 dropout=0.0),
    bbox_head=dict(embed_dims=128, feature_channels=feature_channels),
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
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, pipeline=train_pipeline))

max_iters = 3000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
optim_wrapper = dict(optimizer=dict(lr=2e-4, fused=False), clip_grad=dict(max_norm=1.0))
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
auto_scale_lr = dict(base_batch_size=8)
randomness = dict(seed=0)

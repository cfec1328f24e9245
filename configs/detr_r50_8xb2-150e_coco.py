# DETR R50 on COCO, 150 epochs (lr drop at 100): 8 GPUs x 2 images.
_base_ = [
    './_base_/models/detr_r50.py',
    'mmdet::_base_/datasets/coco_detection.py',
    './_base_/default_runtime.py',
]

# Point this at your COCO copy, in the file or on the command line:
#   --cfg-options data_root=/path/to/coco/
data_root = 'data/coco/'

# The paper's augmentation: flip; multi-scale resize (shorter side 480..800
# step 32, longer <= 1333), or resize to 400/500/600 + random crop 384..600
# followed by the multi-scale resize.
_multi_scale = [(s, 1333) for s in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=_multi_scale, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize',
                     scales=[(400, 1333), (500, 1333), (600, 1333)],
                     keep_ratio=True),
                dict(type='RandomCrop',
                     crop_type='absolute_range',
                     crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=_multi_scale, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# AdamW 1e-4 (backbone 1e-5), weight decay 1e-4, gradient clipping at 0.1.
# fused=True: PyTorch's one-kernel AdamW (same update; CPU and CUDA), several
# times faster than the per-parameter loop PyTorch uses by default on CPU.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4, fused=True),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1, decay_mult=1.0)}))

max_epochs = 150
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[100],
         gamma=0.1)
]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))

# The learning rate above is for 16 images per step (8 GPUs x 2);
# `--auto-scale-lr` rescales it to the actual batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)

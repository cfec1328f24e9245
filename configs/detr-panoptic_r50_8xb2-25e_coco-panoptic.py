# Stage 2 of DETR's panoptic recipe (DETR paper, section 4.4): the box detector of stage 1
# (configs/detr_r50_8xb2-500e_coco-panoptic.py) frozen, the attention maps and the mask head
# trained for 25 epochs with the lr drop at 15; scored by mmdet's CocoPanopticMetric (PQ,
# SQ, RQ) and CocoMetric (box and mask AP of the things). Reference release: PQ 43.4, box AP
# 38.8, mask AP 31.1. A converted release checkpoint evaluates directly:
#   python tools/model_converters/detr_original_to_plugin.py detr-r50-panoptic.pth out.pth
#   python tools/test.py configs/detr-panoptic_r50_8xb2-25e_coco-panoptic.py out.pth
_base_ = './detr_r50_8xb2-500e_coco-panoptic.py'

data_root = 'data/coco/'

# stage 1's last checkpoint (its mask head is absent and starts afresh)
load_from = 'work_dirs/detr_r50_8xb2-500e_coco-panoptic/epoch_500.pth'

model = dict(
    type='PluginDETRPanoptic',
    freeze_detector=True,
    data_preprocessor=dict(pad_mask=True),
    backbone=dict(out_indices=(0, 1, 2, 3)),  # C2..C4 for the mask head, C5 for DETR
    bbox_head=dict(
        type='PluginDETRPanopticHead',
        num_classes=133,
        num_things_classes=80,
        attention_map=dict(type='PluginMHAttentionMap', num_heads=8),
        mask_head=dict(type='PluginMaskHead', in_channels=(1024, 512, 256)),
        loss_mask=dict(type='FocalLoss', use_sigmoid=True, alpha=0.25, gamma=2.0,
                       reduction='mean', loss_weight=1.0),
        loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True, naive_dice=True,
                       eps=1.0, reduction='mean', loss_weight=1.0)),
    # panoptic merge: queries scoring above 0.85, pixel-wise argmax of their masks,
    # segments of 4 px or less dropped (the reference's settings)
    test_cfg=dict(max_per_img=100,
                  panoptic=dict(score_thr=0.85, min_segment_area=4, mask_thr=0.5)))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='PluginLoadPanopticAnnotations', with_seg=False,
         backend_args={{_base_.backend_args}}),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoiceResize', scales=[(s, 1333) for s in range(480, 801, 32)],
         keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadPanopticAnnotations', backend_args={{_base_.backend_args}}),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    _delete_=True,  # stage 1 has no validation
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='PluginCocoPanopticDataset',
        data_root=data_root,
        ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='CocoPanopticMetric',
         ann_file=data_root + 'annotations/panoptic_val2017.json',
         seg_prefix=data_root + 'annotations/panoptic_val2017/'),
    dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val2017.json',
         metric=['bbox', 'segm']),
]
test_evaluator = val_evaluator
val_cfg = dict(_delete_=True, type='ValLoop')
test_cfg = dict(_delete_=True, type='TestLoop')

# AdamW 1e-4 on the mask parts only (the rest has no gradient), 25 epochs, lr x0.1 at 15
max_epochs = 25
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[15],
         gamma=0.1)
]

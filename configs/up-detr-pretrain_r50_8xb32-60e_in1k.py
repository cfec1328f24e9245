# UP-DETR pre-training (Dai et al. 2021) on ImageNet's train images, labels ignored: the
# reference recipe. 8 GPUs x 32 images, AdamW 1e-4, weight decay 1e-4, clip 0.1, 60 epochs
# with the lr dropped at 40; 10 patches of 128 px per image, 100 queries (10 per patch);
# images resized to a shorter side of 320-480 px, the longer at most 600.
# Any folder of images works: point data_root / data_prefix at it (all nesting levels and
# common image formats are read; the folder's layout and any labels are ignored).
#   bash tools/dist_train.sh configs/up-detr-pretrain_r50_8xb32-60e_in1k.py 8
# The backbone is frozen (the reference gives it learning rate 0). The reference starts from a
# self-supervised ResNet-50 (SwAV): set model.backbone.init_cfg.checkpoint to such weights
# (mmdet ResNet names); torchvision's supervised ImageNet weights are the default here.
# Fine-tune with configs/up-detr_r50_8xb2-300e_coco.py.
_base_ = [
    './_base_/models/detr_r50.py',
    './_base_/default_runtime.py',
]

data_root = 'data/imagenet/'
num_queries = 100
num_patches = 10

model = dict(
    type='PluginUPDETR',
    num_queries=num_queries,
    freeze_backbone=True,
    queries=dict(_delete_=True, type='PluginPatchQueries', num_patches=num_patches,
                 feature_channels=2048, feature_dropout=0.1, shuffle=False),
    encoder=dict(pre_norm=True),
    decoder=dict(pre_norm=True),
    bbox_head=dict(_delete_=True, type='PluginUPDETRHead', num_classes=1, embed_dims=256,
                   feature_channels=2048,
                   criterion=dict(type='PluginSetCriterion', no_object_weight=0.1,
                                  loss_cls_weight=1.0, loss_bbox_weight=5.0,
                                  loss_iou_weight=2.0, loss_feature_weight=1.0)))

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    # patches are cut from the image as loaded; the resize below scales their boxes
    dict(type='PluginRandomQueryPatches', num_patches=num_patches, min_size=8, patch_size=128),
    dict(type='RandomChoiceResize', scales=[(600, s) for s in range(320, 481, 16)],
         keep_ratio=True),
    dict(type='PluginPackQueryPatchInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    # no AspectRatioBatchSampler: the folder does not know image sizes without reading them
    dataset=dict(type='PluginImageFolderDataset', data_root=data_root,
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
# pre-training has no validation
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None

max_epochs = 60
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4, fused=True),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[40],
         gamma=0.1)
]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=256)

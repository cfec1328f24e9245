# Stage 1 of DETR's panoptic recipe on the generated toy panoptic set: the toy box
# detector (configs/detr_r18-c4_toy.py, same convergence aids) trained on its 4 thing classes
# (the shapes) and 3 stuff classes (textured background bands), every segment a box.
# Stage 2 (masks, detector frozen): configs/detr-panoptic_r18_toy.py.
# Generate the data first:
#   python tools/misc/make_toy_dataset.py --panoptic --out-dir data/toy_panoptic
# (`make panoptic-demo` runs both stages, mmdet's PQ evaluation and the pictures).
_base_ = './detr_r18-c4_toy.py'

data_root = 'data/toy_panoptic/'
thing_classes = ('circle', 'square', 'triangle', 'cross')  # datasets.TOY_THING_CLASSES
stuff_classes = ('stripes', 'checks', 'speckle')  # datasets.TOY_STUFF_CLASSES
classes = thing_classes + stuff_classes
metainfo = dict(classes=classes, thing_classes=thing_classes, stuff_classes=stuff_classes)

# at most 4 things and 3 stuff bands per image: 10 queries; the demo's query scheme without
# its denoising (the mask stage's head has no denoising losses, and the figures of
# docs/panoptic.md were measured without it)
model = dict(
    num_queries=10,
    queries=dict(_delete_=True, type='PluginAnchorPointQueries', num_groups=6),
    bbox_head=dict(num_classes=len(classes)),
    test_cfg=dict(max_per_img=10))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    # things and stuff alike: one box per segment of the panoptic PNG (masks: stage 2)
    dict(type='PluginLoadPanopticAnnotations', with_mask=False, with_seg=False),
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='PluginCocoPanopticDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline))
# scored through stage 2 (box AP of the things, PQ): no validation here
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None

max_iters = 2400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.8)], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=600))

# Stage 1 of DETR's panoptic recipe (DETR paper, section 4.4): the box detector trained on
# COCO panoptic's 133 classes (80 things + 53 stuff), each segment a box, with the COCO box
# recipe (500 epochs, lr drop at 400). Stage 2 (the mask head, detector frozen):
#   configs/detr-panoptic_r50_8xb2-25e_coco-panoptic.py
# Stage 1 is scored through stage 2 (box AP of the things, PQ), so it runs no validation.
_base_ = './detr_r50_8xb2-500e_coco.py'

data_root = 'data/coco/'
dataset_type = 'PluginCocoPanopticDataset'  # mmdet's CocoPanopticDataset, with clear errors

model = dict(bbox_head=dict(num_classes=133))

# every segment (things, crowd and stuff) is a box target, from its mask
_multi_scale = [(s, 1333) for s in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='PluginLoadPanopticAnnotations', with_mask=False, with_seg=False,
         backend_args={{_base_.backend_args}}),
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
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/panoptic_train2017.json',
        data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None

# Stage 1 of DETR's panoptic recipe with ResNet-101; stage 2:
# configs/detr-panoptic_r101_8xb2-25e_coco-panoptic.py.
_base_ = './detr_r50_8xb2-500e_coco-panoptic.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))

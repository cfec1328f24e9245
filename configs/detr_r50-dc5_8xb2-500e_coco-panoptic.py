# Stage 1 of DETR's panoptic recipe with the R50-DC5 backbone (last stage dilated, features
# at 1/16); stage 2: configs/detr-panoptic_r50-dc5_8xb2-25e_coco-panoptic.py.
_base_ = './detr_r50_8xb2-500e_coco-panoptic.py'

model = dict(
    backbone=dict(type='PluginResNet', strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)))

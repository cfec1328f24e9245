# DETR R50-DC5: the last stage dilated instead of strided (features at 1/16).
# PluginResNet keeps the first block of the dilated stage at dilation 1, as the
# reference DETR (torchvision) does, so its DC5 checkpoints convert exactly.
_base_ = './detr_r50_8xb2-500e_coco.py'

model = dict(
    backbone=dict(type='PluginResNet', strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)))

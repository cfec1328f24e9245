# Stage 2 of DETR's panoptic recipe, R50-DC5 (reference release: PQ 44.6, box AP 40.2, mask
# AP 31.9). C5 and C4 are both at 1/16 here: the mask head's first upsampling keeps the size.
_base_ = './detr-panoptic_r50_8xb2-25e_coco-panoptic.py'

load_from = 'work_dirs/detr_r50-dc5_8xb2-500e_coco-panoptic/epoch_500.pth'

model = dict(
    backbone=dict(type='PluginResNet', strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)))

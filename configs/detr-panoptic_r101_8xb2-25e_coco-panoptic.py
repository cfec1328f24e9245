# Stage 2 of DETR's panoptic recipe, ResNet-101 (reference release: PQ 45.1, box AP 40.1,
# mask AP 33.0). R101's C4, C3, C2 have R50's widths (1024, 512, 256).
_base_ = './detr-panoptic_r50_8xb2-25e_coco-panoptic.py'

load_from = 'work_dirs/detr_r101_8xb2-500e_coco-panoptic/epoch_500.pth'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))

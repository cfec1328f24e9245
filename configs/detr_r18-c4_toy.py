# The demo's recipe (configs/detr_r18_toy.py) with the memory from ResNet stage 3 (C4,
# stride 16, 128 channels: an 8x8 memory at 128 px), as the demo was before its memory moved
# to stride 8. About 0.75x the demo's step; 5 seeds at 2800 steps: mAP 0.614 +- 0.015
# (docs/denoising.md). The toy panoptic, UP-DETR and VOC configs build on it.
_base_ = './detr_r18_toy.py'

model = dict(
    backbone=dict(num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(2, )),
    neck=dict(in_channels=128))

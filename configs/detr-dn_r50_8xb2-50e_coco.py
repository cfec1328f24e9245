# DETR R50 with denoising training (DN-DETR, Li et al. 2022) on COCO, 50 epochs
# (lr drop at 40): 8 GPUs x 2 images.
#
# The model is DETR's (backbone, encoder, decoder, head) with DN-DETR's training aids:
# - 4-D anchor boxes as queries (PluginAnchorBoxQueries, DAB-DETR's anchors): each query's
#   position is an MLP of its box's sine encoding and the head refines the box in logit space;
#   a noised ground-truth box becomes a denoising query whole, size included;
# - 5 denoising groups, label noise 0.2, box noise 0.4 (DN-DETR's settings);
# - 300 queries, sigmoid focal classification loss (weight 1) and focal matching cost
#   (class 2, L1 5, GIoU 2), as DN-DETR.
# DN-DETR's published 44.1 AP (R50, 50 epochs) is for DAB-DETR's decoder (conditional
# cross-attention modulated by the anchor's size), which this config does not have: no COCO
# figure of this config has been measured yet (docs/denoising.md).
_base_ = './detr_r50_8xb2-150e_coco.py'

model = dict(
    num_queries=300,
    queries=dict(_delete_=True, type='PluginDenoisingQueries',
                 queries=dict(type='PluginAnchorBoxQueries'),
                 num_dn_groups=5, label_noise=0.2, box_noise=0.4),
    bbox_head=dict(criterion=dict(cls_loss='focal', loss_cls_weight=1.0)),
    train_cfg=dict(assigner=dict(match_costs=[
        dict(type='PluginFocalLossCost', weight=2.0),
        dict(type='PluginBBoxL1Cost', weight=5.0),
        dict(type='PluginIoUCost', weight=2.0),
    ])),
    test_cfg=dict(max_per_img=100))

max_epochs = 50
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[40],
         gamma=0.1)
]

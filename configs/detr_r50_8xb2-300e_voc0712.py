# DETR R50 on Pascal VOC 07+12 -> VOC2007 test, 300 epochs with the lr drop at 200 (UP-DETR's
# longer VOC schedule).
_base_ = './detr_r50_8xb2-150e_voc0712.py'

max_epochs = 300
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[200],
         gamma=0.1)
]

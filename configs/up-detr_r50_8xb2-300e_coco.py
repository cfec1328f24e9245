# DETR R50 on COCO fine-tuned from UP-DETR pre-training: the reference recipe, 300 epochs with
# the lr drop at 200, backbone lr 5e-5 (transformer 1e-4). Reference release: 43.1 box AP
# (DETR with the same self-supervised backbone: 42.1; supervised DETR at 500 epochs: 42.0).
# load_from is a checkpoint of configs/up-detr-pretrain_r50_8xb32-60e_in1k.py, or the
# reference release's converted with
#   python tools/model_converters/updetr_convert.py up-detr-pre-training-60ep-imagenet.pth \
#       up-detr_r50_pretrain.pth --to finetune
# The pre-training heads and the "patch" classifier are dropped on loading (a log line lists
# them); every other tensor must load (a missing one stops the run).
_base_ = './detr_r50_8xb2-150e_coco.py'

model = dict(
    reset_classifier=True,
    encoder=dict(pre_norm=True),
    decoder=dict(pre_norm=True))
load_from = 'work_dirs/up-detr-pretrain_r50_8xb32-60e_in1k/epoch_60.pth'

max_epochs = 300
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[200],
         gamma=0.1)
]
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.5, decay_mult=1.0)}))

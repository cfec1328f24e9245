# DETR R50 on Pascal VOC: VOC2007 + VOC2012 trainval -> VOC2007 test, 150 epochs with the lr
# drop at 100, 8 GPUs x 2 images. The setting in which UP-DETR (Dai et al., CVPR 2021)
# fine-tunes DETR on VOC: the COCO recipe of detr_r50_8xb2-150e_coco.py (AdamW 1e-4, backbone
# 1e-5, clipping 0.1, the multi-scale augmentation, the same schedule) on VOC's 20 classes.
# Only the data, the class count and the metric differ from the COCO config.
_base_ = ['./detr_r50_8xb2-150e_coco.py', './_base_/datasets/voc0712.py']

# Point this at the VOCdevkit folder (VOC2007/ and VOC2012/ inside), in the file or with
#   --cfg-options data_root=/path/to/VOCdevkit/
data_root = 'data/VOCdevkit/'
dataset_type = 'VOCDataset'  # informative only (the COCO base's name would mislead)

model = dict(bbox_head=dict(num_classes=20))

train_dataloader = dict(
    dataset=dict(
        _base_.voc_train_dataset,
        _delete_=True,
        datasets=[
            dict(d, data_root=data_root, pipeline=_base_.train_pipeline)
            for d in _base_.voc_train_dataset.datasets
        ]))
val_dataloader = dict(
    dataset=dict(_base_.voc_test_dataset, _delete_=True, data_root=data_root,
                 pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_base_.voc_evaluator, _delete_=True)
test_evaluator = val_evaluator

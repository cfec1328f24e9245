# The toy DETR of detr_r18-c4_toy.py (model, schedule, optimiser: 2800 iterations of 8 images)
# on the toy shapes in Pascal VOC's layout, through the same VOC data sets and metric as
# detr_r50_8xb2-150e_voc0712.py (configs/_base_/datasets/voc0712.py): VOC2007 + VOC2012
# trainval to train, VOC2007 test to validate and test, VOCMetric. It runs the VOC
# configs' data path end to end on a CPU. Generate the data first:
#   python tools/misc/make_toy_dataset.py --format voc --out-dir data/toy_voc
# (the pictures and boxes of data/toy/, 500 + 500 trainval and 200 test images; docs/voc.md)
_base_ = ['./detr_r18-c4_toy.py', './_base_/datasets/voc0712.py']

data_root = 'data/toy_voc/VOCdevkit/'
# VOCDataset keeps the objects whose XML `name` is one of metainfo's classes (VOC's 20 by
# default); the toy files name the shapes, so every data set takes the toy config's
# metainfo (circle, square, triangle, cross).
metainfo = _base_.metainfo

train_dataloader = dict(
    dataset=dict(
        _base_.voc_train_dataset,
        _delete_=True,
        datasets=[
            dict(d, data_root=data_root, metainfo=metainfo, pipeline=_base_.train_pipeline)
            for d in _base_.voc_train_dataset.datasets
        ]))
# Tested as XMLDataset, VOCDataset's parent (same files, same parsing, no `dataset_type`):
# on a VOC2007 set VOCMetric labels the rows of its per-class table with VOC's own 20 class
# names whatever the classes are; without the type it uses metainfo's.
val_dataloader = dict(
    dataset=dict(_base_.voc_test_dataset, _delete_=True, type='XMLDataset',
                 data_root=data_root, metainfo=metainfo, pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_base_.voc_evaluator, _delete_=True)
test_evaluator = val_evaluator

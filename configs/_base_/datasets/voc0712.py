# Pascal VOC detection, 20 classes: train on VOC2007 + VOC2012 trainval (5011 + 11540
# images), test on VOC2007 test (4952 images), with mmdet's VOCDataset and VOCMetric.
# Parts, not a whole data config: the names carry a `voc_` prefix and the data sets have no
# data_root and no pipeline, so that a config can take this file as a second base beside
# one with data of its own (the COCO R50 config, the toy config) and build its loaders from
# these parts with its own root, pipelines and classes (configs/detr_r50_8xb2-150e_voc0712.py,
# configs/detr_r18_toy-voc0712.py).
#
# Under data_root (the VOCdevkit folder of VOC's tar files; docs/voc.md):
#   VOC2007/{JPEGImages,Annotations}/, VOC2007/ImageSets/Main/{trainval,test}.txt
#   VOC2012/{JPEGImages,Annotations}/, VOC2012/ImageSets/Main/trainval.txt
# VOCDataset reads the ids listed in ann_file, the image <sub_data_root>JPEGImages/<id>.jpg
# and the annotation <sub_data_root>Annotations/<id>.xml of each. The year in sub_data_root
# becomes the data set's metainfo `dataset_type` (VOC2007 or VOC2012); the two training
# sets differ in it, which ConcatDataset refuses unless told to ignore the key.
# Objects marked `difficult` become ignored instances: left out of training (the
# matching never sees them) and neither hits nor misses in VOCMetric, as VOC's own scoring.
voc_train_dataset = dict(
    type='ConcatDataset',
    ignore_keys=['dataset_type'],
    datasets=[
        dict(type='VOCDataset',
             ann_file=f'{year}/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root=f'{year}/'),
             # as the COCO configs: skip images without boxes or with a side under 32 px
             # (mmdet's anchor-based VOC configs also ignore boxes under 32 px,
             # bbox_min_size; DETR keeps the small ones)
             filter_cfg=dict(filter_empty_gt=True, min_size=32))
        for year in ('VOC2007', 'VOC2012')
    ])
voc_test_dataset = dict(
    type='VOCDataset',
    ann_file='VOC2007/ImageSets/Main/test.txt',
    data_prefix=dict(sub_data_root='VOC2007/'),
    test_mode=True)

# VOCMetric at ten IoU thresholds, 0.50 to 0.95 in steps of 0.05: `pascal_voc/AP50` is VOC's
# mAP, `pascal_voc/AP75` the stricter one, and `pascal_voc/mAP` (VOCMetric's mean over its
# thresholds) the COCO-style AP that DETR-family papers such as UP-DETR report on VOC2007
# test. eval_mode='area': the area under the precision-recall curve (VOC's devkit from 2010
# on; COCO's AP is an area too, sampled at 101 recalls) rather than VOC2007's 11-point
# average, which mmdet's own voc0712 base config keeps; VOCMetric warns that VOC2007 data
# defaults to 11 points, as expected. For VOC2007's original protocol:
#   --cfg-options val_evaluator.eval_mode=11points test_evaluator.eval_mode=11points
voc_evaluator = dict(
    type='VOCMetric',
    metric='mAP',
    eval_mode='area',
    iou_thrs=[round(0.5 + 0.05 * i, 2) for i in range(10)])

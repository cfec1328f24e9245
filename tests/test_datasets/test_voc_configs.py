"""The Pascal VOC configs: their recipe, their data sets built on a generated VOC set, the
data root option, the preflight checks and VOCMetric's numbers on hand-made predictions."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmdet.registry import DATASETS, METRICS
from mmdet.structures import DetDataSample
from mmdet_detr_plugin.datasets import TOY_CLASSES, make_toy_voc
from mmdet_detr_plugin.utils.config import merge_options
from mmdet_detr_plugin.utils.preflight import check_datasets

CONFIGS = osp.join(osp.dirname(__file__), '..', '..', 'configs')
VOC_150E = osp.join(CONFIGS, 'detr_r50_8xb2-150e_voc0712.py')
VOC_300E = osp.join(CONFIGS, 'detr_r50_8xb2-300e_voc0712.py')
TOY_VOC = osp.join(CONFIGS, 'detr_r18_toy-voc0712.py')
IOU_THRS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


def _check_voc_data(cfg: Config, data_root: str, train_pipeline, test_pipeline) -> None:
    train = cfg.train_dataloader.dataset
    assert train.type == 'ConcatDataset' and train.ignore_keys == ['dataset_type']
    assert [(d.type, d.ann_file, d.data_prefix, d.data_root) for d in train.datasets] == [
        ('VOCDataset', f'{y}/ImageSets/Main/trainval.txt', dict(sub_data_root=f'{y}/'),
         data_root) for y in ('VOC2007', 'VOC2012')]
    assert all(d.pipeline == train_pipeline for d in train.datasets)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        test = loader.dataset
        assert (test.ann_file, test.data_prefix, test.data_root, test.test_mode) == (
            'VOC2007/ImageSets/Main/test.txt', dict(sub_data_root='VOC2007/'), data_root, True)
        assert test.pipeline == test_pipeline
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator == dict(type='VOCMetric', metric='mAP', eval_mode='area',
                                 iou_thrs=IOU_THRS)


@pytest.mark.parametrize('path, epochs, drop', [(VOC_150E, 150, 100), (VOC_300E, 300, 200)],
                         ids=['150e', '300e'])
def test_r50_voc_configs_are_the_coco_recipe_on_voc(path, epochs, drop):
    cfg = Config.fromfile(path)
    coco = Config.fromfile(osp.join(CONFIGS, 'detr_r50_8xb2-150e_coco.py'))
    assert cfg.data_root == 'data/VOCdevkit/'
    _check_voc_data(cfg, 'data/VOCdevkit/', coco.train_pipeline, coco.test_pipeline)
    assert cfg.test_dataloader.dataset.type == 'VOCDataset'
    # 20 classes, else the COCO model, optimiser (AdamW 1e-4, backbone 1e-5), batch 2
    assert cfg.model.bbox_head.num_classes == 20
    model = copy.deepcopy(cfg.model)
    model.bbox_head.num_classes = 80
    assert model == coco.model
    assert cfg.optim_wrapper == coco.optim_wrapper
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult == 0.1
    assert cfg.train_dataloader.batch_size == 2 and cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=10)
    assert cfg.param_scheduler == [dict(type='MultiStepLR', begin=0, end=epochs, by_epoch=True,
                                        milestones=[drop], gamma=0.1)]


def test_toy_voc_config_is_the_toy_recipe_on_the_voc_data():
    cfg = Config.fromfile(TOY_VOC)
    toy = Config.fromfile(osp.join(CONFIGS, 'detr_r18-c4_toy.py'))
    root = 'data/toy_voc/VOCdevkit/'
    _check_voc_data(cfg, root, toy.train_pipeline, toy.test_pipeline)
    # training reads VOCDataset; testing its parent XMLDataset (metric table labels)
    assert cfg.test_dataloader.dataset.type == 'XMLDataset'
    for d in cfg.train_dataloader.dataset.datasets + [cfg.test_dataloader.dataset]:
        assert d.metainfo == dict(classes=TOY_CLASSES)
    for key in ('model', 'optim_wrapper', 'train_cfg', 'param_scheduler', 'default_hooks',
                'randomness'):
        assert cfg[key] == toy[key], key
    assert cfg.train_dataloader.batch_size == toy.train_dataloader.batch_size == 8


def test_data_root_option_reaches_every_voc_set():
    cfg = Config.fromfile(VOC_150E)
    merge_options(cfg, {'data_root': '/data/voc/VOCdevkit/'})
    roots = [d.data_root for d in cfg.train_dataloader.dataset.datasets]
    roots += [cfg.val_dataloader.dataset.data_root, cfg.test_dataloader.dataset.data_root]
    assert roots == ['/data/voc/VOCdevkit/'] * 4


@pytest.fixture(scope='module')
def toy_voc(tmp_path_factory):
    root = tmp_path_factory.mktemp('voc')
    return make_toy_voc(str(root), num_train=5, num_val=3, img_size=64, min_size=8,
                        max_size=24, max_objects=3, seed=0)


def test_toy_voc_config_builds_its_data_sets(toy_voc):
    cfg = Config.fromfile(TOY_VOC)
    merge_options(cfg, {'data_root': toy_voc['out_dir'] + '/'})
    train = DATASETS.build(cfg.train_dataloader.dataset)
    test = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(train) == 5 and len(test) == 3
    assert train.metainfo['classes'] == test.metainfo['classes'] == TOY_CLASSES
    subsets = toy_voc['subsets']
    assert [train.get_data_info(i)['img_id'] for i in range(5)] == (
        subsets['VOC2007/trainval']['ids'] + subsets['VOC2012/trainval']['ids'])
    assert sum(len(train.get_data_info(i)['instances']) for i in range(5)) == (
        subsets['VOC2007/trainval']['num_instances']
        + subsets['VOC2012/trainval']['num_instances'])
    # one item through the toy pipeline: image resized to 128, boxes scaled with it
    item = train[0]
    assert item['inputs'].shape == (3, 128, 128)
    raw = np.array([ins['bbox'] for ins in train.get_data_info(0)['instances']])
    boxes = item['data_samples'].gt_instances.bboxes.tensor.numpy()
    flipped = item['data_samples'].flip
    if flipped:  # RandomFlip mirrors x: x1' = W - x2
        boxes = np.stack([128 - boxes[:, 2], boxes[:, 1], 128 - boxes[:, 0], boxes[:, 3]], 1)
    np.testing.assert_allclose(boxes, raw * 2, atol=1e-4)


def test_preflight_names_a_missing_voc_year(toy_voc, tmp_path):
    cfg = Config.fromfile(TOY_VOC)
    merge_options(cfg, {'data_root': toy_voc['out_dir'] + '/'})
    check_datasets(cfg, 'train')  # all there
    check_datasets(cfg, 'test')
    cfg.train_dataloader.dataset.datasets[1].data_root = str(tmp_path) + '/'
    with pytest.raises(FileNotFoundError,
                       match=r'train_dataloader\.dataset\.datasets\[1\]\.ann_file: annotation '
                       r'file not found: .*VOC2012/ImageSets/Main/trainval\.txt'):
        check_datasets(cfg, 'train')
    cfg = Config.fromfile(TOY_VOC)
    merge_options(cfg, {'data_root': toy_voc['out_dir'] + '/'})
    cfg.model.bbox_head.num_classes = 3
    with pytest.raises(ValueError, match=r'num_classes=3 but train_dataloader\.dataset\.'
                       r'datasets\[0\] has 4 classes'):
        check_datasets(cfg, 'train')
    voc = Config.fromfile(VOC_150E)  # VOCDataset's own 20 classes
    merge_options(voc, {'data_root': toy_voc['out_dir'] + '/', 'model.bbox_head.num_classes': 4})
    with pytest.raises(ValueError, match=r'datasets\[0\] has 20 classes \(aeroplane'):
        check_datasets(voc, 'train')


def _sample(gt_boxes, gt_labels, boxes, scores, labels, ignored=()) -> dict:
    """A data sample as VOCMetric reads it (boxes xyxy, inclusive pixel corners)."""
    sample = DetDataSample(metainfo=dict(img_id=0))
    sample.gt_instances = InstanceData(bboxes=torch.tensor(gt_boxes, dtype=torch.float32),
                                       labels=torch.tensor(gt_labels))
    ignored = list(ignored)
    sample.ignored_instances = InstanceData(
        bboxes=torch.tensor(ignored, dtype=torch.float32).reshape(-1, 4),
        labels=torch.zeros(len(ignored), dtype=torch.long))
    sample.pred_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                         scores=torch.tensor(scores),
                                         labels=torch.tensor(labels))
    return sample.to_dict()


def test_config_metric_on_hand_made_predictions():
    """The config's VOCMetric: AP50 is VOC's mAP, mAP the mean over 0.50:0.95.

    Class 0 has a 10 x 10 box, [0, 0, 9, 9] in VOC's inclusive corners (area
    10 * 10 = 100); its prediction [0, 0, 9, 14] (10 x 15 = 150) covers it:
    IoU 100 / 150 = 0.667, a hit at 0.50, 0.55, 0.60 and 0.65 only, so AP 1
    there and 0 at the six stricter thresholds: mAP 0.4. Class 1 is found
    exactly (AP 1 everywhere: mAP 1). Mean over the two classes: mAP 0.7,
    AP50 = AP65 = 1.0, AP70 = AP75 = 0.5. A confident prediction on an
    ignored (difficult) box is neither a hit nor a miss.
    """
    cfg = Config.fromfile(VOC_150E)
    metric = METRICS.build(cfg.val_evaluator)
    metric.dataset_meta = dict(classes=('a', 'b'))
    sample = _sample(gt_boxes=[[0, 0, 9, 9], [20, 20, 39, 29]], gt_labels=[0, 1],
                     boxes=[[0, 0, 9, 14], [20, 20, 39, 29], [50, 50, 59, 59]],
                     scores=[0.9, 0.8, 0.95], labels=[0, 1, 0],
                     ignored=[[50, 50, 59, 59]])
    metric.process({}, [sample])
    results = metric.evaluate(1)
    assert results['pascal_voc/mAP'] == pytest.approx(0.7, abs=1e-6)
    for thr, ap in ((50, 1.0), (65, 1.0), (70, 0.5), (75, 0.5), (95, 0.5)):
        assert results[f'pascal_voc/AP{thr}'] == pytest.approx(ap, abs=1e-6), thr

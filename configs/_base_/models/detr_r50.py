# DETR R50 (Carion et al. 2020): the model alone, in the plugin's parts.
custom_imports = dict(imports=['mmdet_detr_plugin'], allow_failed_imports=False)

model = dict(
    type='PluginDETR',
    num_queries=100,
    queries=dict(type='PluginDETRQueries'),  # learned object queries (DETR paper, 3.2)
    # speed kernels: unset is accel='default' (every kernel that pays on this machine);
    # accel='reference' runs none, accel=dict(linear='torch', ...) changes some
    # (docs/options.md), e.g. --cfg-options model.accel.channels_last=False
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=1),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=1,  # stem and layer1 frozen, as the reference
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,  # frozen batch norm statistics
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(type='PluginInputProjection', in_channels=2048, out_channels=256),
    positional_encoding=dict(
        type='PluginSinePositionalEncoding', num_feats=128, normalize=True),
    encoder=dict(
        type='PluginDetrTransformerEncoder',
        num_layers=6,
        embed_dims=256,
        num_heads=8,
        feedforward_channels=2048,
        dropout=0.1,
        pre_norm=False),
    decoder=dict(
        type='PluginDetrTransformerDecoder',
        num_layers=6,
        embed_dims=256,
        num_heads=8,
        feedforward_channels=2048,
        dropout=0.1,
        pre_norm=False,
        self_attn=True,
        return_intermediate=True),
    bbox_head=dict(
        type='PluginDETRHead',
        num_classes=80,
        embed_dims=256,
        criterion=dict(
            type='PluginSetCriterion',
            no_object_weight=0.1,
            loss_cls_weight=1.0,
            loss_bbox_weight=5.0,
            loss_iou_weight=2.0,
            aux_loss=True)),
    train_cfg=dict(
        assigner=dict(
            type='PluginHungarianAssigner',
            match_costs=[
                dict(type='PluginClassificationCost', weight=1.0),
                dict(type='PluginBBoxL1Cost', weight=5.0),
                dict(type='PluginIoUCost', weight=2.0),
            ])),
    test_cfg=dict(max_per_img=100))

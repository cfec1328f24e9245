"""tools/analysis_tools/ablation.py: each variant's config edit (on the toy
config and on a copy whose queries have a denoising wrapper), the skips, the
budget, the duplicate counter, the curves, the report and the resume logic;
and one slow run of the tool as a user runs it."""
import copy
import json
import math
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from test_train_test_resume import CONFIG, REPO, run_tool


def _import_tool():
    """The tool as a module; the process's environment and path as before."""
    saved_path, had_policy = list(sys.path), 'OMP_WAIT_POLICY' in os.environ
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
    try:
        import ablation
    finally:
        sys.path[:] = saved_path
        if not had_policy:
            os.environ.pop('OMP_WAIT_POLICY', None)
    return ablation


ablation = _import_tool()
NotApplicable = ablation.NotApplicable

# 3 training images: 3 objects, 1 object and a crowd region, none
IMAGES = [dict(id=i, file_name=f'{i}.png', width=96, height=96) for i in (1, 2, 3)]
ANNOTATIONS = [dict(id=k, image_id=img, category_id=1, bbox=[0, 0, 10, 10], area=100,
                    iscrowd=crowd)
               for k, (img, crowd) in enumerate([(1, 0), (1, 0), (1, 0), (2, 0), (2, 1)])]
MAX_OBJECTS = 3

FOCAL_OFF = {
    'model.bbox_head.criterion.cls_loss': 'ce',
    'model.bbox_head.criterion.loss_cls_weight': 1.0,
    'model.bbox_head.criterion.no_object_weight': 0.1,
    'model.train_cfg.assigner.match_costs.0': dict(type='PluginClassificationCost', weight=1.0),
}
TOY_EDITS = {
    'full': {},
    'queries-1': {'model.num_queries': 1, 'model.test_cfg.max_per_img': 1},
    'queries-max': {'model.num_queries': 3, 'model.test_cfg.max_per_img': 3},
    'queries-2x': {'model.num_queries': 6, 'model.test_cfg.max_per_img': 6},
    'queries-10x': {'model.num_queries': 30},  # max_per_img 10 <= 30 stays
    'no-self-attn': {'model.decoder.self_attn': False},
    'no-aux': {'model.bbox_head.criterion.aux_loss': False},
    'no-groups': {'model.queries.num_groups': 1},
    'no-anchors': {'model.queries': dict(type='PluginDETRQueries', num_groups=6)},
    'no-focal': FOCAL_OFF,
    'detr': {'model.queries': dict(type='PluginDETRQueries', num_groups=1), **FOCAL_OFF},
}
DN = dict(type='PluginDenoisingQueries', num_dn_groups=5, label_noise=0.2, box_noise=0.4)
DN_EDITS = {
    **{name: TOY_EDITS[name]
       for name in ('full', 'queries-1', 'queries-max', 'queries-2x', 'queries-10x',
                    'no-self-attn', 'no-aux', 'no-focal', 'detr')},
    'no-groups': {'model.queries.queries.num_groups': 1},
    'no-anchors': {'model.queries.queries': dict(type='PluginDETRQueries', num_groups=6)},
    'no-dn': {'model.queries': dict(type='PluginAnchorPointQueries', num_groups=6)},
}


def write_coco(path: str, images: list, annotations: list) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=[dict(id=1, name='circle')]), f)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    """A data root (without the trailing slash) with the hand-made training set."""
    root = tmp_path_factory.mktemp('ablation_data')
    write_coco(str(root / 'annotations' / 'train.json'), IMAGES, ANNOTATIONS)
    return str(root)


@pytest.fixture(scope='module')
def dn_cfg(data_root):
    """The demo config as shipped: denoising around anchor points."""
    cfg = ablation.load_ablation_config(CONFIG, None, data_root)
    assert cfg.model.queries.to_dict() == dict(
        DN, queries=dict(type='PluginAnchorPointQueries', num_groups=6))
    return cfg


@pytest.fixture(scope='module')
def toy_cfg(dn_cfg):
    """The demo config without denoising (its recipe before it)."""
    cfg = copy.deepcopy(dn_cfg)
    cfg.model.queries = cfg.model.queries.queries.to_dict()
    return cfg


def flatten(node, prefix: str = '') -> dict:
    """{dotted key: leaf value} (list items by index)."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return {prefix: node}
    out = {}
    for key, value in items:
        out.update(flatten(value, f'{prefix}.{key}' if prefix else str(key)))
    return out


def check_edit(cfg, name: str, expected: dict) -> None:
    """The variant's settings are ``expected``, the edited config holds them,
    nothing else changed, and the given config is untouched."""
    before = flatten(cfg.to_dict())
    edited, settings = ablation.make_variant(cfg, name)
    assert flatten(cfg.to_dict()) == before
    assert settings == expected
    after = flatten(edited.to_dict())
    changed = {k for k in before.keys() | after.keys() if before.get(k, 'gone') != after.get(k)}
    assert all(any(k == s or k.startswith(s + '.') for s in settings) for k in changed), changed
    for key, value in expected.items():
        assert ablation.plain(ablation.get_key(edited, key)) == value


def test_data_root_moves_the_data_sets(toy_cfg, data_root):
    root = data_root + '/'
    assert toy_cfg.data_root == root
    assert toy_cfg.train_dataloader.dataset.data_root == root
    assert toy_cfg.val_dataloader.dataset.data_root == root
    assert toy_cfg.val_evaluator.ann_file == root + 'annotations/val.json'
    assert ablation.train_ann_file(toy_cfg) == root + 'annotations/train.json'


def test_max_objects_per_image_leaves_out_crowds(data_root, tmp_path):
    assert ablation.max_objects_per_image(ablation.osp.join(
        data_root, 'annotations', 'train.json')) == MAX_OBJECTS
    empty = str(tmp_path / 'no_objects.json')
    write_coco(empty, IMAGES, [])
    assert ablation.max_objects_per_image(empty) == 0
    write_coco(empty, [], [])
    with pytest.raises(ValueError, match='no images'):
        ablation.max_objects_per_image(empty)


def test_matching_scheme_is_found_inside_a_denoising_wrapper(toy_cfg, dn_cfg):
    scheme, key = ablation.matching_scheme(toy_cfg)
    assert key == 'model.queries' and scheme.type == 'PluginAnchorPointQueries'
    scheme, key = ablation.matching_scheme(dn_cfg)
    assert key == 'model.queries.queries' and scheme.type == 'PluginAnchorPointQueries'
    scheme.num_groups = 2  # the node itself, not a copy
    assert dn_cfg.model.queries.queries.num_groups == 2
    scheme.num_groups = 6


@pytest.mark.parametrize('name', list(TOY_EDITS))
def test_variant_edits_of_the_toy_config(toy_cfg, name):
    check_edit(toy_cfg, name, TOY_EDITS[name])


@pytest.mark.parametrize('name', list(DN_EDITS))
def test_variant_edits_of_a_denoising_config(dn_cfg, name):
    check_edit(dn_cfg, name, DN_EDITS[name])
    edited, _ = ablation.make_variant(dn_cfg, name)
    if name not in ('no-dn', 'detr'):  # the wrapper stays
        assert {k: edited.model.queries[k] for k in DN} == DN


ATSS = dict(type='ATSSHead', num_classes=4, in_channels=128, stacked_convs=1,
            feat_channels=128,
            anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4,
                                  scales_per_octave=1, strides=[16]),
            train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1,
                           pos_weight=-1, debug=False))
BOXES = dict(type='PluginAnchorBoxQueries', num_groups=6)
PROPOSAL_EDITS = {
    'no-proposals': {'model.queries.queries': BOXES},
    'no-encoder-head': {'model.queries.queries': BOXES, 'model.encoder_head': None},
}


@pytest.fixture(scope='module')
def proposal_cfg(dn_cfg):
    """Denoising around two-stage queries, from an encoder head."""
    cfg = copy.deepcopy(dn_cfg)
    cfg.model.encoder_head = copy.deepcopy(ATSS)
    stride = 2 ** (cfg.model.backbone.num_stages + 1)  # the memory's: C3 8, C4 16
    cfg.model.encoder_head.anchor_generator.strides = [stride]
    cfg.model.queries.queries = dict(type='PluginProposalQueries', num_groups=6)
    return cfg


@pytest.mark.parametrize('name', list(PROPOSAL_EDITS))
def test_variant_edits_of_a_two_stage_config(proposal_cfg, name):
    check_edit(proposal_cfg, name, PROPOSAL_EDITS[name])
    for other in ('no-proposals', 'no-encoder-head'):  # not applicable to the demo config
        with pytest.raises(NotApplicable):
            ablation.make_variant(ablation.make_variant(proposal_cfg, 'no-encoder-head')[0],
                                  other)


def test_two_stage_variants_build_the_model_they_say(proposal_cfg):
    from mmdet.registry import MODELS
    from conftest import make_batch
    for name, head, scheme in [('full', True, 'PluginProposalQueries'),
                               ('no-proposals', True, 'PluginAnchorBoxQueries'),
                               ('no-encoder-head', False, 'PluginAnchorBoxQueries'),
                               ('detr', False, 'PluginDETRQueries')]:
        cfg = ablation.make_variant(proposal_cfg, name)[0]
        model = MODELS.build(cfg.model)
        assert (model.encoder_head is not None) == head, name
        matching = getattr(model.queries, 'matching', model.queries)
        assert type(matching).__name__ == scheme, name
        if name == 'full':
            model.train()
            inputs, samples = make_batch([(64, 64), (64, 48)], [2, 3], num_classes=4)
            losses = model.loss(inputs, samples)
            assert 'enc.loss_cls' in losses and 'dn_loss_cls' in losses


def test_every_variant_is_tested():
    assert set(TOY_EDITS) | set(DN_EDITS) | set(PROPOSAL_EDITS) == set(ablation.VARIANTS)


def test_variants_that_do_not_apply_are_skipped(toy_cfg):
    with pytest.raises(NotApplicable):
        ablation.make_variant(toy_cfg, 'no-dn')
    detr, _ = ablation.make_variant(toy_cfg, 'detr')
    for name in ('no-groups', 'no-anchors', 'no-focal', 'no-dn', 'detr'):
        with pytest.raises(NotApplicable):
            ablation.make_variant(detr, name)
    no_attn, _ = ablation.make_variant(toy_cfg, 'no-self-attn')
    with pytest.raises(NotApplicable):
        ablation.make_variant(no_attn, 'no-self-attn')
    # the plain recipe has self-attention: detr switches it back on
    _, settings = ablation.make_variant(no_attn, 'detr')
    assert settings['model.decoder.self_attn'] is True
    three, _ = ablation.make_variant(toy_cfg, 'queries-max')  # 3 queries already
    with pytest.raises(NotApplicable):
        ablation.make_variant(three, 'queries-max')
    with pytest.raises(KeyError, match='unknown variant'):
        ablation.make_variant(toy_cfg, 'no-backbone')


def test_queries_variants_name_a_missing_annotation_file(toy_cfg, tmp_path):
    cfg = copy.deepcopy(toy_cfg)
    cfg.train_dataloader.dataset.data_root = str(tmp_path) + '/'
    with pytest.raises(FileNotFoundError, match='train_dataloader.dataset.ann_file'):
        ablation.make_variant(cfg, 'queries-max')


def test_every_toy_variant_builds_the_model_it_says(toy_cfg):
    """The edited configs build, into the modules the edits ask for; the
    plain recipe, which changes the most, also takes a loss step."""
    from mmdet.registry import MODELS
    from conftest import make_batch
    for name in ablation.VARIANTS:
        try:
            cfg, _ = ablation.make_variant(toy_cfg, name)
        except NotApplicable:
            continue
        model = MODELS.build(cfg.model)
        assert model.num_queries == cfg.model.num_queries, name
        assert model.queries.num_groups == (1 if name in ('no-groups', 'detr') else 6), name
        assert type(model.queries).__name__ == (
            'PluginDETRQueries' if name in ('no-anchors', 'detr') else 'PluginAnchorPointQueries')
        assert model.bbox_head.criterion.cls_loss == (
            'ce' if name in ('no-focal', 'detr') else 'focal'), name
        assert model.bbox_head.criterion.aux_loss == (name != 'no-aux'), name
        assert all(layer.with_self_attn == (name != 'no-self-attn')
                   for layer in model.decoder.layers), name
    inputs, samples = make_batch([(64, 64), (64, 48)], [2, 3], num_classes=4)
    losses = model.loss(inputs, samples)  # detr, the last variant
    assert 'd0.loss_cls' in losses and all(torch.isfinite(v).all() for v in losses.values())


def test_denoising_variants_build_the_model_they_say(dn_cfg):
    from mmdet.registry import MODELS
    if 'PluginDenoisingQueries' not in MODELS.module_dict:
        pytest.skip('PluginDenoisingQueries is not registered')
    for name, wrapped, scheme, groups in [('full', True, 'PluginAnchorPointQueries', 6),
                                          ('no-groups', True, 'PluginAnchorPointQueries', 1),
                                          ('no-anchors', True, 'PluginDETRQueries', 6),
                                          ('no-dn', False, 'PluginAnchorPointQueries', 6),
                                          ('detr', False, 'PluginDETRQueries', 1)]:
        model = MODELS.build(ablation.make_variant(dn_cfg, name)[0].model)
        matching = model.queries.matching if wrapped else model.queries
        assert (type(model.queries).__name__ == 'PluginDenoisingQueries') == wrapped, name
        assert (type(matching).__name__, matching.num_groups) == (scheme, groups), name


def test_budget_scales_the_schedule(toy_cfg):
    cfg = copy.deepcopy(toy_cfg)
    ablation.apply_budget(cfg, 1400, 4, seed=3)
    assert cfg.train_cfg.max_iters == 1400 and cfg.train_cfg.val_interval == 350
    warmup, step = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 140)
    assert (step.type, step.end, step.milestones) == ('MultiStepLR', 1400, [1120])
    assert cfg.default_hooks.checkpoint.interval == 1400
    assert cfg.default_hooks.checkpoint.max_keep_ckpts == 1
    assert cfg.default_hooks.logger.log_metric_by_epoch is False
    assert cfg.randomness == dict(seed=3)

    cfg = copy.deepcopy(toy_cfg)
    ablation.apply_budget(cfg, 3000, 2, seed=0)  # the warm-up is 200 steps at most
    assert cfg.param_scheduler[0].end == 200 and cfg.param_scheduler[1].milestones == [2400]
    cfg = copy.deepcopy(toy_cfg)
    ablation.apply_budget(cfg, 20, 3, seed=0)  # 3 does not divide 20: at 7, 14 and 20
    assert cfg.train_cfg.val_interval == 7
    assert cfg.param_scheduler[0].end == 2 and cfg.param_scheduler[1].milestones == [16]

    cfg = copy.deepcopy(toy_cfg)
    cfg.param_scheduler[1].by_epoch = True
    with pytest.raises(ValueError, match=r'param_scheduler\[1\]'):
        ablation.apply_budget(cfg, 20, 2, seed=0)


def test_box_iou_equals_mmdet():
    from mmdet.structures.bbox import bbox_overlaps
    gen = np.random.default_rng(0)
    xy = gen.uniform(0, 50, (2, 7, 2))
    boxes = np.concatenate([xy, xy + gen.uniform(1, 30, (2, 7, 2))], axis=-1)
    expected = bbox_overlaps(torch.from_numpy(boxes[0]), torch.from_numpy(boxes[1])).numpy()
    np.testing.assert_allclose(ablation.box_iou(boxes[0], boxes[1]), expected, rtol=1e-6)


def test_duplicates_counted_on_hand_made_predictions():
    box, lower, exact = [0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 10, 7]
    # image 1: IoU(box, lower) 0.9 (same class: a pair); lower again in class 1 (no partner);
    # box at score 0.2 (below the threshold)
    one = dict(bboxes=np.array([box, lower, lower, box], float),
               scores=np.array([0.9, 0.8, 0.8, 0.2]), labels=np.array([0, 0, 1, 0]))
    # image 2: three copies of box in class 2 (3 pairs) and one at IoU exactly 0.7 (not > 0.7)
    two = dict(bboxes=np.array([box, box, box, exact], float),
               scores=np.array([0.5, 0.4, 0.3, 0.9]), labels=np.array([2, 2, 2, 3]))
    two_exact = dict(two, labels=np.array([2, 2, 2, 2]))
    none = dict(bboxes=np.zeros((0, 4)), scores=np.zeros(0), labels=np.zeros(0, int))
    assert ablation.count_duplicates([one, two, none, none], 0.3) == dict(
        images=4, kept=7, duplicates=4, duplicates_per_100=100.0, kept_per_image=1.75)
    # box against exact: IoU 70 / 100 = 0.7, which is not > 0.7
    assert ablation.count_duplicates([two_exact], 0.3)['duplicates'] == 3
    assert ablation.count_duplicates([two_exact], 0.3, iou_thr=0.69)['duplicates'] == 6
    assert ablation.count_duplicates([one], 0.95)['kept'] == 0


def write_scalars(run_dir: str, stamp: str, rows: list) -> None:
    os.makedirs(osp.join(run_dir, stamp, 'vis_data'))
    with open(osp.join(run_dir, stamp, 'vis_data', 'scalars.json'), 'w') as f:
        f.writelines(json.dumps(row) + '\n' for row in rows)


def test_read_run_takes_the_newest_log(tmp_path):
    run_dir = str(tmp_path)
    write_scalars(run_dir, '20240101_000000', [{'coco/bbox_mAP': 0.9, 'step': 4}])
    write_scalars(run_dir, '20240102_000000', [
        {'loss': 2.0, 'iter': 1, 'step': 1}, {'loss': 1.5, 'iter': 2, 'step': 2},
        {'coco/bbox_mAP': 0.1, 'coco/bbox_mAP_50': 0.3, 'step': 2},
        {'loss': 1.0, 'iter': 4, 'step': 4},
        {'coco/bbox_mAP': 0.25, 'coco/bbox_mAP_50': 0.5, 'step': 4}])
    assert ablation.read_run(run_dir) == dict(curve=[[2, 0.1], [4, 0.25]], mAP=0.25, AP50=0.5,
                                              steps=4)


RUN = dict(config='configs/detr_r18_toy.py', budget=8, evals=2, seed=0, data_root=None,
           cfg_options=None, dup_score_thr=0.3)


def fake_result(map_: float) -> dict:
    return dict(curve=[[4, map_ / 2], [8, map_]], mAP=map_, AP50=2 * map_, steps=8, train_s=12.5,
                val_images=8, duplicates_per_100=25.0, kept_per_image=1.5)


def hand_made_results() -> dict:
    return dict(
        variants={'no-aux': dict(settings={'model.bbox_head.criterion.aux_loss': False},
                                 run=RUN, **fake_result(0.1)),
                  'full': dict(settings={}, run=RUN, **fake_result(0.25))},
        skipped={'no-dn': 'no denoising'}, failed={})


def parse_table(text: str) -> dict:
    rows = [line.strip('|').split('|') for line in text.splitlines()
            if line.startswith('| ') and not line.startswith('| variant')]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def test_report_from_a_hand_made_json(tmp_path):
    work = str(tmp_path)
    with open(osp.join(work, 'ablation.json'), 'w') as f:
        json.dump(hand_made_results(), f)
    assert ablation.main(['--work-dir', work, '--report-only']) == 0
    with open(osp.join(work, 'ablation.md')) as f:
        table = parse_table(f.read())
    # in VARIANTS order; mAP, AP50, mAP - full, dup / 100 img, kept / img, train s, steps
    assert list(table) == ['full', 'no-aux']
    assert table['full'] == ['0.250', '0.500', '', '25.0', '1.50', '12', '8']
    assert table['no-aux'] == ['0.100', '0.200', '-0.150', '25.0', '1.50', '12', '8']
    with Image.open(osp.join(work, 'ablation.png')) as img:
        assert img.size[0] > 0 and img.size[1] > 0
    with open(osp.join(work, 'ablation.json')) as f:  # report-only writes no json
        assert json.load(f) == hand_made_results()


def test_report_only_needs_a_json(tmp_path):
    with pytest.raises(SystemExit, match='ablation.json'):
        ablation.main(['--work-dir', str(tmp_path), '--report-only'])


def test_merge_parallel_work_dirs(tmp_path):
    halves = hand_made_results()
    for name, variants in (('a', {'full': halves['variants']['full']}),
                           ('b', {'no-aux': halves['variants']['no-aux']})):
        os.makedirs(tmp_path / name)
        with open(tmp_path / name / 'ablation.json', 'w') as f:
            json.dump(dict(variants=variants, skipped=halves['skipped'] if name == 'b' else {},
                           failed={}), f)
    merged = str(tmp_path / 'merged')
    assert ablation.main(['--work-dir', merged, '--report-only', '--merge',
                          str(tmp_path / 'a'), str(tmp_path / 'b')]) == 0
    with open(osp.join(merged, 'ablation.json')) as f:
        assert json.load(f) == hand_made_results()
    assert list(parse_table(open(osp.join(merged, 'ablation.md')).read())) == ['full', 'no-aux']
    doc = tmp_path / 'doc.md'
    doc.write_text('a\n<!-- ablation -->\n<!-- /ablation -->\nb\n')
    ablation.main(['--work-dir', merged, '--report-only', '--doc', str(doc)])
    assert list(parse_table(doc.read_text())) == ['full', 'no-aux']
    # another budget in one of them: not one comparison
    other = dict(halves['variants']['no-aux'], run=dict(RUN, budget=16))
    with open(tmp_path / 'b' / 'ablation.json', 'w') as f:
        json.dump(dict(variants={'no-aux': other}), f)
    with pytest.raises(SystemExit, match='other settings'):
        ablation.main(['--work-dir', str(tmp_path / 'm2'), '--report-only', '--merge',
                       str(tmp_path / 'a'), str(tmp_path / 'b')])


def test_resume_force_skip_and_failure(toy_cfg, data_root, tmp_path, monkeypatch):
    """The loop around training, with training replaced by a stand-in."""
    trained = []
    outcome = {}

    def train(cfg, run_dir, score_thr):
        trained.append(osp.basename(run_dir))
        assert cfg.train_cfg.max_iters == 8 and score_thr == 0.3
        return outcome.get(osp.basename(run_dir), fake_result(0.2))

    monkeypatch.setattr(ablation, 'train_and_measure', train)
    work = str(tmp_path / 'work')
    plain_config = str(tmp_path / 'plain.py')  # without denoising: no-dn is skipped
    toy_cfg.dump(plain_config)

    def cli(variants='full,no-dn,no-aux', budget='8'):
        return [plain_config, '--work-dir', work, '--budget', budget, '--evals', '2',
                '--data-root', data_root, '--variants', variants]

    args = cli()
    assert ablation.main(args) == 0
    assert trained == ['full', 'no-aux']
    # the real dump once (slow: it formats the file); a stand-in from here on
    monkeypatch.setattr(type(toy_cfg), 'dump', lambda cfg, path: open(path, 'w').close())
    with open(osp.join(work, 'ablation.json')) as f:
        results = json.load(f)
    assert list(results['variants']) == ['full', 'no-aux']
    assert list(results['skipped']) == ['no-dn']
    assert results['variants']['no-aux']['settings'] == TOY_EDITS['no-aux']
    assert results['variants']['no-aux']['run']['budget'] == 8
    # the dumped config is the edited one with the budget
    from mmengine.config import Config
    dumped = Config.fromfile(osp.join(work, 'no-aux', 'config.py'))
    assert dumped.model.bbox_head.criterion.aux_loss is False
    assert dumped.train_cfg.max_iters == 8 and dumped.train_cfg.val_interval == 4

    assert ablation.main(args) == 0  # done already
    assert trained == ['full', 'no-aux']
    with pytest.raises(SystemExit, match='budget'):  # another budget: not mixed in silently
        ablation.main(cli(budget='12'))
    assert ablation.main(cli('no-aux') + ['--force']) == 0
    assert trained == ['full', 'no-aux', 'no-aux']

    outcome['no-self-attn'] = dict(error='tools/train.py exited with 1', log='train.log')
    assert ablation.main(cli('full,no-self-attn')) == 1
    with open(osp.join(work, 'ablation.json')) as f:
        results = json.load(f)
    assert 'no-self-attn' in results['failed'] and 'no-self-attn' not in results['variants']
    del outcome['no-self-attn']
    assert ablation.main(cli('full,no-self-attn')) == 0  # a failed variant is retried
    assert trained[-1] == 'no-self-attn'


@pytest.mark.slow
def test_ablation_trains_two_variants_from_the_command_line(tmp_path):
    from mmdet_detr_plugin.datasets import make_toy_coco
    root = str(tmp_path / 'toy')
    make_toy_coco(root, num_train=16, num_val=8, img_size=96, seed=0)
    work = str(tmp_path / 'ablation')
    args = ['tools/analysis_tools/ablation.py', CONFIG, '--budget', '4', '--evals', '2',
            '--work-dir', work, '--data-root', root, '--variants', 'full,no-aux,no-dn',
            '--dup-score-thr', '0.0', '--cfg-options', 'train_dataloader.batch_size=4',
            'val_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.persistent_workers=False']
    run_tool(*args)
    with open(osp.join(work, 'ablation.json')) as f:
        results = json.load(f)
    assert list(results['variants']) == ['full', 'no-aux', 'no-dn']
    assert not results['skipped']
    for name, result in results['variants'].items():
        assert [step for step, _ in result['curve']] == [2, 4]
        assert result['steps'] == 4 and result['val_images'] == 8
        assert 0 <= result['mAP'] <= 1 and math.isfinite(result['AP50'])
        # score threshold 0: every kept prediction, max_per_img (10) per image
        assert result['kept_per_image'] == 10.0
        assert result['duplicates_per_100'] >= 0 and result['train_s'] > 0
        assert osp.isfile(osp.join(work, name, 'config.py'))
        assert osp.isfile(result['checkpoint'])
    for out in ('ablation.md', 'ablation.png'):
        assert osp.getsize(osp.join(work, out)) > 0

    # a second run trains nothing
    log = osp.join(work, 'full', 'train.log')
    mtime = os.stat(log).st_mtime_ns
    run_tool(*args)
    assert os.stat(log).st_mtime_ns == mtime
    with open(osp.join(work, 'ablation.json')) as f:
        assert json.load(f) == results

"""Panoptic checkpoints of the original DETR release convert to the plugin's layout.

No release file is downloaded. A release panoptic state dict (``DETRsegm``)
is the box model under ``detr.`` plus ``bbox_attention.*`` and
``mask_head.*``; here the box part comes from a small plugin model through
the box converter's reverse (tested in test_original.py), with a 251-row
classifier whose row i holds the number i, and the mask parts are made by
hand with the shapes of the release's ``MHAttentionMap`` and
``MaskHeadSmallConv`` (models/segmentation.py): a table written out here,
not derived from the converter's.
"""
import copy
import os.path as osp
import runpy
import sys
from collections import OrderedDict
from typing import Dict, Sequence, Tuple

import pytest
import torch
from torch import Tensor

from mmdet.datasets import CocoDataset, CocoPanopticDataset
from mmdet.registry import MODELS
from mmdet_detr_plugin.converters import COCO_CATEGORY_IDS, COCO_PANOPTIC_CATEGORIES, \
    COCO_PANOPTIC_IDS, OriginalCheckpointError, convert_original, original_to_plugin, \
    plugin_to_original

from conftest import SMALL_PLUGIN_DETR
from test_original import REPO, TOOL, assert_same, build, release_r50_by_hand

R50_PANOPTIC_CONFIG = osp.join(REPO, 'configs', 'detr-panoptic_r50_8xb2-25e_coco-panoptic.py')
D, HEADS = 64, 4  # the small model's width and heads (tests/conftest.py)
RESNET18_FPN = (256, 128, 64)  # C4, C3, C2 of a ResNet-18
# release name -> plugin name of every mask parameter (weight and bias each)
MASK_NAMES = [('bbox_attention.q_linear', 'bbox_head.attention_map.q_proj'),
              ('bbox_attention.k_linear', 'bbox_head.attention_map.k_proj')]
MASK_NAMES += [(f'mask_head.{release}{n}', f'bbox_head.mask_head.convs.{n - 1}.{plugin}')
               for n in range(1, 6) for release, plugin in (('lay', 'conv'), ('gn', 'gn'))]
MASK_NAMES += [(f'mask_head.adapter{n}', f'bbox_head.mask_head.adapters.{n - 1}')
               for n in range(1, 4)]
MASK_NAMES += [('mask_head.out_lay', 'bbox_head.mask_head.out_conv')]


def release_mask_shapes(d: int, heads: int,
                        fpn: Sequence[int]) -> Dict[str, Tuple[int, ...]]:
    """Weight shapes of the release's mask parts (bias: the first dim):
    ``MHAttentionMap(d, d, heads)`` and ``MaskHeadSmallConv(d + heads,
    fpn, d)``: widths d + heads, d/2, d/4, d/8, d/16, then 1."""
    widths = [d + heads, d + heads, d // 2, d // 4, d // 8, d // 16]
    shapes = {'bbox_attention.q_linear': (d, d), 'bbox_attention.k_linear': (d, d)}
    for n in range(1, 6):
        shapes[f'mask_head.lay{n}'] = (widths[n], widths[n - 1], 3, 3)
        shapes[f'mask_head.gn{n}'] = (widths[n], )
    shapes['mask_head.out_lay'] = (1, widths[5], 3, 3)
    for n, channels in enumerate(fpn, 1):
        shapes[f'mask_head.adapter{n}'] = (widths[n + 1], channels, 1, 1)
    return shapes


def release_mask_parts(d: int = D, heads: int = HEADS, fpn: Sequence[int] = RESNET18_FPN
                       ) -> 'OrderedDict[str, Tensor]':
    """Random mask parts in the release's names and module order."""
    gen = torch.Generator().manual_seed(5)
    shapes = release_mask_shapes(d, heads, fpn)
    order = (['bbox_attention.q_linear', 'bbox_attention.k_linear']
             + [f'mask_head.{p}{n}' for n in range(1, 6) for p in ('lay', 'gn')]
             + ['mask_head.out_lay'] + [f'mask_head.adapter{n}' for n in range(1, 4)])
    out = OrderedDict()
    for name in order:
        out[f'{name}.weight'] = torch.randn(shapes[name], generator=gen)
        out[f'{name}.bias'] = torch.randn(shapes[name][0], generator=gen)
    return out


@pytest.fixture(scope='module')
def release_box() -> 'OrderedDict[str, Tensor]':
    """A small box DETR in the release's names, with the release's panoptic
    classifier: 251 rows, row i (category id i; 250 = no-object) filled with i.
    Shared by the tests: copy before changing."""
    box = plugin_to_original(build(SMALL_PLUGIN_DETR).state_dict(), class_map=None)
    box['class_embed.weight'] = torch.arange(251.)[:, None].expand(251, D).clone()
    box['class_embed.bias'] = torch.arange(251.)
    return box


@pytest.fixture(scope='module')
def release(release_box) -> 'OrderedDict[str, Tensor]':
    """The release's panoptic layout: the box model under ``detr.``, then the
    mask parts. Shared by the tests: copy before changing."""
    out = OrderedDict((f'detr.{k}', v) for k, v in release_box.items())
    out.update(release_mask_parts())
    return out


# ---------------------------------------------------------------------- #
def test_coco_panoptic_ids():
    """The id table against mmdet's class list and panopticapi's categories."""
    names = tuple(n for _, n in COCO_PANOPTIC_CATEGORIES)
    assert names == CocoPanopticDataset.METAINFO['classes']
    assert names[:80] == CocoPanopticDataset.METAINFO['thing_classes'] == \
        CocoDataset.METAINFO['classes']
    assert names[80:] == CocoPanopticDataset.METAINFO['stuff_classes']
    ids = dict((n, i) for i, n in COCO_PANOPTIC_CATEGORIES)
    assert len(ids) == len(set(ids.values())) == 133
    # pairs read in panoptic_coco_categories.json (cocodataset/panopticapi)
    assert (ids['person'], ids['toothbrush'], ids['banner'], ids['blanket'],
            ids['bridge'], ids['wall-other-merged'], ids['rug-merged']) == \
        (1, 90, 92, 93, 95, 199, 200)
    assert COCO_PANOPTIC_IDS[:80] == COCO_CATEGORY_IDS  # the things are COCO detection's
    things, stuff = COCO_PANOPTIC_IDS[:80], COCO_PANOPTIC_IDS[80:]
    assert list(things) == sorted(things) and list(stuff) == sorted(stuff)
    assert max(things) == 90 < 92 == min(stuff) and max(stuff) == 200


def test_release_mask_shapes_at_r50_width():
    """The hand-made table at the release's width: d = 256, 8 heads, R50 C4..C2."""
    shapes = release_mask_shapes(256, 8, (1024, 512, 256))
    assert shapes == {
        'bbox_attention.q_linear': (256, 256), 'bbox_attention.k_linear': (256, 256),
        'mask_head.lay1': (264, 264, 3, 3), 'mask_head.gn1': (264, ),
        'mask_head.lay2': (128, 264, 3, 3), 'mask_head.gn2': (128, ),
        'mask_head.lay3': (64, 128, 3, 3), 'mask_head.gn3': (64, ),
        'mask_head.lay4': (32, 64, 3, 3), 'mask_head.gn4': (32, ),
        'mask_head.lay5': (16, 32, 3, 3), 'mask_head.gn5': (16, ),
        'mask_head.out_lay': (1, 16, 3, 3), 'mask_head.adapter1': (128, 1024, 1, 1),
        'mask_head.adapter2': (64, 512, 1, 1), 'mask_head.adapter3': (32, 256, 1, 1)}


def test_classifier_rows_become_mmdet_panoptic_labels(release):
    result = convert_original(release)
    assert result.panoptic and result.coco_mapped
    assert result.arch.describe().endswith(', mask head')
    weight, bias = result.state_dict['bbox_head.fc_cls.weight'], \
        result.state_dict['bbox_head.fc_cls.bias']
    assert weight.shape == (134, D) and bias.shape == (134, )
    classes = CocoPanopticDataset.METAINFO['classes']
    # plugin row -> release row (= category id), as read in the id table
    for row, release_row, name in [(0, 1, 'person'), (79, 90, 'toothbrush'),
                                   (80, 92, 'banner'), (131, 199, 'wall-other-merged'),
                                   (132, 200, 'rug-merged'), (133, 250, None)]:
        assert bias[row] == release_row and torch.all(weight[row] == release_row)
        assert name is None or classes[row] == name
    assert bias.tolist() == [float(i) for i in COCO_PANOPTIC_IDS] + [250.]
    # without the map (a model that keeps the 250 ids as labels) rows stay
    kept = original_to_plugin(release, num_classes=250, class_map=None)
    assert torch.equal(kept['bbox_head.fc_cls.bias'], torch.arange(251.))


def test_mask_parts_renamed_and_box_part_as_the_box_converter(release, release_box):
    ours = original_to_plugin(release)
    for release_name, plugin_name in MASK_NAMES:
        for p in ('weight', 'bias'):
            assert ours[f'{plugin_name}.{p}'] is release[f'{release_name}.{p}'], plugin_name
    # everything else: what the box converter makes of the box part alone
    box = original_to_plugin(release_box, num_classes=250, class_map=None)
    mask_keys = [f'{p}.{w}' for _, p in MASK_NAMES for w in ('weight', 'bias')]
    assert list(ours)[:len(box)] == list(box)
    assert sorted(list(ours)[len(box):]) == sorted(mask_keys)
    for key, value in box.items():
        if not key.startswith('bbox_head.fc_cls.'):
            assert torch.equal(ours[key], value), key
    assert ours['queries.embedding.weight'] is release['detr.query_embed.weight']
    assert ours['backbone.layer1.0.bn1.num_batches_tracked'].item() == 0


def test_round_trip(release):
    ours = original_to_plugin(release)
    back = plugin_to_original(ours)
    assert list(back) == list(release)
    for key, value in release.items():
        if not key.startswith('detr.class_embed.'):
            assert back[key] is value, key
    # rows of the 133 ids and no-object come back; the unused ids get zero
    # weights and a bias that gives them zero probability
    used = list(COCO_PANOPTIC_IDS) + [250]
    unused = sorted(set(range(251)) - set(used))
    weight, bias = back['detr.class_embed.weight'], back['detr.class_embed.bias']
    assert torch.equal(weight[used], release['detr.class_embed.weight'][used])
    assert torch.equal(bias[used], release['detr.class_embed.bias'][used])
    assert not weight[unused].any() and torch.all(bias[unused] == -1e4)
    assert_same(original_to_plugin(back), ours)
    # rows kept both ways
    kept = original_to_plugin(release, num_classes=250, class_map=None)
    assert_same(plugin_to_original(kept, class_map=None), release)


def test_fine_tuned_classifier_keeps_its_rows(release):
    release = copy.copy(release)
    release['detr.class_embed.weight'] = torch.randn(6, D)
    release['detr.class_embed.bias'] = torch.randn(6)
    ours = original_to_plugin(release, num_classes=5)
    assert ours['bbox_head.fc_cls.weight'] is release['detr.class_embed.weight']


def test_panoptic_without_mask_head_is_refused(release_box):
    panoptic = OrderedDict((f'detr.{k}', v) for k, v in release_box.items())
    with pytest.raises(OriginalCheckpointError) as err:
        original_to_plugin(panoptic)
    msg = str(err.value)
    assert msg.startswith('a panoptic DETR checkpoint (detr.* keys) without its mask head')
    assert '32 missing key(s)' in msg and 'bbox_attention.q_linear.weight' in msg


def test_partial_or_mixed_panoptic_is_refused_with_one_error(release):
    broken = copy.copy(release)
    del broken['mask_head.gn3.bias'], broken['detr.transformer.decoder.layers.1.norm2.weight']
    broken['mask_head.lay6.weight'] = torch.zeros(2, 4, 3, 3)
    broken['query_embed.weight'] = torch.zeros(10, D)  # a box key without detr.
    with pytest.raises(OriginalCheckpointError) as err:
        original_to_plugin(broken)
    msg = str(err.value)
    assert msg.startswith('not a complete panoptic DETR state dict')
    assert '2 missing key(s): detr.transformer.decoder.layers.1.norm2.weight, ' \
        'mask_head.gn3.bias' in msg
    assert '2 unexpected key(s): query_embed.weight, mask_head.lay6.weight' in msg


@pytest.mark.parametrize('rows, num_classes, expected', [
    (100, None, r'detr.class_embed.weight \[100, 64\]: expected 134 rows \(num_classes=133 '
     r"\+ no-object\), or 251 for the release's COCO panoptic ids"),
    (251, 80, r"detr.class_embed.weight \[251, 64\]: class_map='coco' maps these rows "
     r'\(COCO panoptic ids 0..249 \+ no-object\) to 133 classes, but num_classes=80'),
])
def test_classifier_of_neither_size_is_refused(release, rows, num_classes, expected):
    release = copy.copy(release)
    release['detr.class_embed.weight'] = torch.zeros(rows, D)
    release['detr.class_embed.bias'] = torch.zeros(rows)
    with pytest.raises(OriginalCheckpointError, match=expected):
        original_to_plugin(release, num_classes=num_classes)


def test_reference_of_a_box_model_is_refused_with_a_hint(release, small_plugin_cfg):
    cfg = copy.deepcopy(small_plugin_cfg)
    cfg['bbox_head']['num_classes'] = 133
    with pytest.raises(OriginalCheckpointError,
                       match=r'(?s)mask head\) does not fit the model.*32 unexpected key.*'
                       r'hint: a panoptic checkpoint needs a panoptic model'):
        original_to_plugin(release, reference=build(cfg).state_dict())


def test_partial_plugin_mask_head_is_refused(release):
    ours = original_to_plugin(release)
    del ours['bbox_head.mask_head.adapters.2.weight']
    with pytest.raises(OriginalCheckpointError,
                       match=r'1 missing key\(s\): mask_head.adapter3.weight$'):
        plugin_to_original(ours)


def test_tool_converts_a_panoptic_file(release, tmp_path, monkeypatch):
    """In-process (no second start-up): the layout and class names go into the meta."""
    src, dst = str(tmp_path / 'detr-panoptic.pth'), str(tmp_path / 'plugin.pth')
    torch.save(dict(model=release), src)
    monkeypatch.setattr(sys, 'argv', [TOOL, src, dst])
    runpy.run_path(TOOL, run_name='__main__')
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['release_layout'] == 'panoptic'
    assert tuple(ckpt['meta']['dataset_meta']['classes']) == \
        CocoPanopticDataset.METAINFO['classes']
    assert_same(ckpt['state_dict'], original_to_plugin(release))
    # the mask head missing: one error naming the file
    torch.save(dict(model={k: v for k, v in release.items() if k.startswith('detr.')}), src)
    with pytest.raises(SystemExit) as err:
        runpy.run_path(TOOL, run_name='__main__')
    assert str(err.value).startswith(f'{src}: a panoptic DETR checkpoint (detr.* keys) '
                                     'without its mask head')


def test_loads_strictly_into_plugin_detr_panoptic(release, small_plugin_cfg):
    cfg = copy.deepcopy(small_plugin_cfg)
    cfg['type'] = 'PluginDETRPanoptic'
    cfg['backbone']['out_indices'] = (0, 1, 2, 3)  # C2..C5: the mask head reads C2..C4
    # widths 68 (d + heads), 32, 16, 8, 4: GroupNorm of 4 groups divides them all
    cfg['bbox_head'].update(type='PluginDETRPanopticHead', num_classes=133,
                            num_things_classes=80, attention_map=dict(num_heads=HEADS),
                            mask_head=dict(in_channels=RESNET18_FPN, norm_groups=4))
    model = MODELS.build(cfg)
    ours = original_to_plugin(release, reference=model.state_dict())  # names and shapes
    model.load_state_dict(ours, strict=True)
    assert torch.equal(model.state_dict()['bbox_head.mask_head.convs.0.conv.weight'],
                       release['mask_head.lay1.weight'])


def test_tool_converts_a_release_r50_panoptic_file(tmp_path, monkeypatch):
    """DETR R50 panoptic at full size (the hand-made release R50 under ``detr.``,
    251 class rows, the mask parts at d = 256, 8 heads) goes through the tool
    and loads strictly into the model of the R50 panoptic config."""
    release = OrderedDict((f'detr.{k}', v) for k, v in release_r50_by_hand().items())
    release['detr.class_embed.weight'] = torch.randn(251, 256)
    release['detr.class_embed.bias'] = torch.randn(251)
    release.update(release_mask_parts(256, 8, (1024, 512, 256)))
    src, dst = str(tmp_path / 'detr-r50-panoptic.pth'), str(tmp_path / 'plugin.pth')
    torch.save(dict(model=release), src)
    monkeypatch.setattr(sys, 'argv', [TOOL, src, dst, '--config', R50_PANOPTIC_CONFIG])
    # --config: the tool exits unless the keys and shapes are exactly the model's
    runpy.run_path(TOOL, run_name='__main__')
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['release_layout'] == 'panoptic'
    ours = ckpt['state_dict']
    assert torch.equal(ours['bbox_head.mask_head.adapters.0.weight'],
                       release['mask_head.adapter1.weight'])
    assert torch.equal(ours['bbox_head.fc_cls.weight'][80], release['detr.class_embed.weight'][92])

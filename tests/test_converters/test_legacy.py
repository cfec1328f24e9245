"""Plugin checkpoints of the 0.1.0 layout (queries on the detector) upgrade
to the query-scheme layout (``queries.*``)."""
import copy
from collections import OrderedDict

import pytest
import torch

from mmdet.registry import MODELS
from mmdet_detr_plugin.converters import upgrade_plugin_state_dict
from mmdet_detr_plugin.converters.legacy import LEGACY_TABLE

from conftest import SMALL_PLUGIN_DETR

# every 0.1.0 name and its new name
OLD_TO_NEW = OrderedDict([
    ('query_embedding.weight', 'queries.embedding.weight'),
    ('anchor_embedding.weight', 'queries.anchors.weight'),
    ('anchor_pos_mlp.0.weight', 'queries.pos_mlp.0.weight'),
    ('anchor_pos_mlp.0.bias', 'queries.pos_mlp.0.bias'),
    ('anchor_pos_mlp.2.weight', 'queries.pos_mlp.2.weight'),
    ('anchor_pos_mlp.2.bias', 'queries.pos_mlp.2.bias'),
])


def old_state(prefix: str = '') -> 'OrderedDict[str, torch.Tensor]':
    """A 0.1.0 state dict in miniature: shared keys around the old query keys."""
    state = OrderedDict([(f'{prefix}backbone.conv1.weight', torch.randn(2, 3, 1, 1))])
    for i, key in enumerate(OLD_TO_NEW):
        state[prefix + key] = torch.full((2, ), float(i))
    state[f'{prefix}bbox_head.fc_cls.bias'] = torch.randn(3)
    return state


def test_old_keys_get_new_names_in_place():
    old = old_state()
    new, renamed = upgrade_plugin_state_dict(old)
    assert list(new) == (['backbone.conv1.weight'] + list(OLD_TO_NEW.values())
                         + ['bbox_head.fc_cls.bias'])
    assert renamed == list(OLD_TO_NEW)
    for old_key, new_key in OLD_TO_NEW.items():
        assert new[new_key] is old[old_key]  # tensors shared, not copied
    assert new['backbone.conv1.weight'] is old['backbone.conv1.weight']
    assert list(old) == list(old_state())  # the input is left as it was


def test_only_keys_under_the_prefix_are_renamed():
    state = old_state('module.')
    state['query_embedding.weight'] = torch.zeros(1)  # outside the prefix: not ours
    state['module.query_embedding_extra.weight'] = torch.zeros(1)  # no rule: kept
    new, renamed = upgrade_plugin_state_dict(state, prefix='module.')
    assert renamed == ['module.' + k for k in OLD_TO_NEW]
    assert list(new) == (['module.backbone.conv1.weight']
                         + ['module.' + k for k in OLD_TO_NEW.values()]
                         + ['module.bbox_head.fc_cls.bias', 'query_embedding.weight',
                            'module.query_embedding_extra.weight'])
    # the same keys seen with another prefix: nothing to do
    new, renamed = upgrade_plugin_state_dict(state, prefix='detector.')
    assert renamed == [] and list(new) == list(state)


def test_new_layout_is_left_as_it_is():
    new_layout = OrderedDict((k, torch.zeros(1)) for k in OLD_TO_NEW.values())
    new_layout._metadata = OrderedDict(queries=dict(version=1))
    new, renamed = upgrade_plugin_state_dict(new_layout)
    assert renamed == [] and list(new) == list(new_layout)
    assert new._metadata is new_layout._metadata  # load_state_dict reads it


def test_old_and_new_name_together_are_refused():
    state = old_state()
    state['queries.embedding.weight'] = torch.zeros(2)
    with pytest.raises(ValueError, match=r"both 'query_embedding.weight' \(plugin 0.1.0 "
                       r"layout\) and 'queries.embedding.weight'"):
        upgrade_plugin_state_dict(state)


def test_partial_names_are_not_renamed():
    keys = ['anchor_pos_mlp.1.weight',  # the ReLU has no weights: not a 0.1.0 key
            'anchor_pos_mlp.0.weight.extra', 'query_embedding.weight_ema']
    new, renamed = upgrade_plugin_state_dict(OrderedDict((k, torch.zeros(1)) for k in keys))
    assert renamed == [] and list(new) == keys


def test_new_names_are_the_model_ones_and_old_checkpoints_load():
    """The names the table writes are PluginDETR's own (anchor-point queries,
    the largest query scheme), and a 0.1.0 state dict loads strictly."""
    cfg = copy.deepcopy(SMALL_PLUGIN_DETR)
    cfg['queries'] = dict(type='PluginAnchorPointQueries')
    torch.manual_seed(0)
    source = MODELS.build(cfg).state_dict()
    assert set(OLD_TO_NEW.values()) <= set(source)
    old = OrderedDict((LEGACY_TABLE.to_other(k) or k, v) for k, v in source.items())
    assert set(OLD_TO_NEW) <= set(old)
    upgraded, renamed = upgrade_plugin_state_dict(old)
    assert list(upgraded) == list(source) and sorted(renamed) == sorted(OLD_TO_NEW)

    torch.manual_seed(1)
    target = MODELS.build(cfg)
    target.load_state_dict(old, strict=True)
    ours = target.state_dict()
    assert all(torch.equal(ours[k], source[k]) for k in source)

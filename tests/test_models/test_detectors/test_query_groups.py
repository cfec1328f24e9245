"""Query groups (Group DETR): groups do not see each other, each is matched on
its own, and only the first group predicts at test time."""
import copy

import torch

from mmdet.registry import MODELS

from conftest import make_batch


def test_groups_are_independent_and_first_group_predicts(small_plugin_cfg):
    grouped_cfg = copy.deepcopy(small_plugin_cfg)
    grouped_cfg['queries'] = dict(type='PluginDETRQueries', num_groups=3)
    torch.manual_seed(0)
    grouped = MODELS.build(grouped_cfg)
    plain = MODELS.build(small_plugin_cfg)
    state = grouped.state_dict()
    plain_state = dict(state, **{'queries.embedding.weight':
                                 state['queries.embedding.weight'][:10]})
    plain.load_state_dict(plain_state)
    assert grouped.queries.embedding.weight.shape == (30, 64)

    inputs, samples = make_batch([(64, 64), (64, 80)], num_gts=[2, 3])
    grouped.train()
    plain.train()
    feats = grouped.extract_feat(inputs)
    hidden_g = grouped.forward_transformer(feats, samples)
    hidden_p = plain.forward_transformer(plain.extract_feat(inputs), samples)
    assert hidden_g['hidden_states'].shape == (3, 2, 30, 64)
    assert hidden_g['num_query_groups'] == 3
    assert 'num_query_groups' not in hidden_p
    # group 0 is computed exactly as a model without the other groups
    assert torch.allclose(hidden_g['hidden_states'][:, :, :10], hidden_p['hidden_states'],
                          atol=1e-5)

    losses = grouped.loss(inputs, samples)
    assert set(losses) == set(plain.loss(inputs, samples))
    # each group's loss is its own set loss: the mean over groups equals the
    # loss of the three groups run one at a time
    head = grouped.bbox_head
    per_group = []
    for g in range(3):
        part = hidden_g['hidden_states'][:, :, 10 * g:10 * (g + 1)]
        per_group.append(head.loss(part, samples)['loss_bbox'])
    grouped_again = head.loss(hidden_g['hidden_states'], samples, num_query_groups=3)
    # box losses are sums over matches divided by the boxes of all groups
    assert torch.allclose(grouped_again['loss_bbox'], torch.stack(per_group).mean(), atol=1e-5)

    grouped.eval()
    with torch.no_grad():
        results = grouped.predict(inputs, samples)
    assert results[0].pred_instances.query_inds.max() < 10


def test_group_mask_and_bad_group_count():
    from mmdet_detr_plugin.models.layers.queries import group_attention_mask
    mask = group_attention_mask(3, 2, 'cpu')
    assert mask.shape == (6, 6)
    assert mask.int().tolist()[0] == [0, 0, 1, 1, 1, 1]
    assert mask.int().tolist()[5] == [1, 1, 1, 1, 0, 0]
    import pytest
    with pytest.raises(ValueError, match='model.queries.num_groups must be a positive int'):
        MODELS.build(dict(type='PluginDETRQueries', num_groups=0))

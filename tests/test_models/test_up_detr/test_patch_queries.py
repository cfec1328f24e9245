"""UP-DETR's patch queries: the group mask, query shuffle, patch-feature
dropout and the patch -> query-group mapping."""
import pytest
import torch

from mmdet_detr_plugin.models.layers.queries import PluginPatchQueries


def hand_mask(num_queries: int, num_patches: int) -> torch.Tensor:
    """The mask written out by loops: query i may see query j iff both are in
    the same group of num_queries / num_patches consecutive queries."""
    per = num_queries // num_patches
    mask = torch.ones(num_queries, num_queries, dtype=torch.bool)
    for g in range(num_patches):
        for i in range(g * per, (g + 1) * per):
            for j in range(g * per, (g + 1) * per):
                mask[i, j] = False
    return mask


def run(scheme: PluginPatchQueries, feats: torch.Tensor):
    memory = torch.zeros(feats.shape[0], 4, scheme.embed_dims)
    return scheme(memory, None, patch_features=feats)


@pytest.mark.parametrize('num_queries,num_patches', [(100, 10), (20, 5), (12, 3), (60, 4),
                                                     (6, 6), (9, 3)])
def test_group_mask(num_queries, num_patches):
    scheme = PluginPatchQueries(num_queries, 8, num_patches, feature_channels=5).eval()
    decoder_inputs, head_inputs = run(scheme, torch.randn(2, num_patches, 5))
    mask = decoder_inputs['self_attn_mask']
    assert mask.shape == (num_queries, num_queries) and mask.dtype == torch.bool
    assert torch.equal(mask, hand_mask(num_queries, num_patches))
    # each query sees exactly its own group (itself included)
    assert ((~mask).sum(1) == num_queries // num_patches).all()
    assert head_inputs == {}


def test_one_patch_needs_no_mask():
    decoder_inputs, _ = run(PluginPatchQueries(10, 8, 1, feature_channels=5).eval(),
                            torch.randn(1, 1, 5))
    assert 'self_attn_mask' not in decoder_inputs


def test_patch_feeds_its_group_and_content_is_zero():
    torch.manual_seed(0)
    scheme = PluginPatchQueries(12, 8, 3, feature_channels=5).eval()
    feats = torch.randn(2, 3, 5)
    decoder_inputs, _ = run(scheme, feats)
    projected = scheme.patch2query(feats)  # [2, 3, 8]
    for i in range(12):
        expected = scheme.embedding.weight[i] + projected[:, i // 4]
        torch.testing.assert_close(decoder_inputs['query_pos'][:, i], expected)
    assert not decoder_inputs['query'].any()


def test_feature_dropout_zeroes_whole_queries_at_its_rate():
    torch.manual_seed(0)
    scheme = PluginPatchQueries(100, 8, 10, feature_channels=5, feature_dropout=0.1).train()
    feats = torch.randn(64, 10, 5)
    decoder_inputs, _ = run(scheme, feats)
    added = decoder_inputs['query_pos'] - scheme.embedding.weight  # [64, 100, 8]
    full = scheme.patch2query(feats).repeat_interleave(10, dim=1)
    dropped = added.abs().amax(-1) < 1e-6  # [64, 100]
    kept = (added - full).abs().amax(-1) < 1e-5
    assert (dropped ^ kept).all()  # a query gets all of its patch's feature or nothing
    assert 0.08 < dropped.float().mean() < 0.12  # 6400 draws at p=0.1
    scheme.eval()
    decoder_inputs, _ = run(scheme, feats)
    torch.testing.assert_close(decoder_inputs['query_pos'] - scheme.embedding.weight, full)


def test_query_shuffle_is_a_permutation():
    torch.manual_seed(0)
    scheme = PluginPatchQueries(20, 8, 5, feature_channels=5, feature_dropout=0.,
                                shuffle=True).train()
    zeros = torch.zeros(1, 5, 5)
    bias = scheme.patch2query.bias  # what zero features add
    pos = run(scheme, zeros)[0]['query_pos'][0] - bias  # [20, 8]
    table = scheme.embedding.weight
    # every row is one of the embeddings, each used once
    match = (pos[:, None] - table[None]).abs().amax(-1) < 1e-6  # [20, 20]
    assert (match.sum(1) == 1).all() and (match.sum(0) == 1).all()
    order = match.float().argmax(1)
    assert not torch.equal(order, torch.arange(20))
    # a new draw every step
    pos2 = run(scheme, zeros)[0]['query_pos'][0] - bias
    order2 = (pos2[:, None] - table[None]).abs().amax(-1).argmin(1)
    assert not torch.equal(order, order2)
    scheme.eval()  # no shuffle at test time, nor when off
    pos = run(scheme, zeros)[0]['query_pos'][0] - bias
    torch.testing.assert_close(pos, table)


@pytest.mark.parametrize('kwargs,key', [(dict(num_patches=3), r'num_patches \(3\) must divide'),
                                        (dict(num_patches=0), 'num_patches must be a positive'),
                                        (dict(feature_dropout=1.0), 'feature_dropout')])
def test_bad_settings(kwargs, key):
    args = dict(num_queries=10, embed_dims=8, num_patches=5, feature_channels=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=key):
        PluginPatchQueries(**args)


def test_patch_count_of_data_must_match():
    scheme = PluginPatchQueries(10, 8, 5, feature_channels=5)
    with pytest.raises(ValueError, match='query patches per image'):
        run(scheme, torch.randn(1, 2, 5))
    with pytest.raises(ValueError, match='PluginUPDETR'):
        scheme(torch.zeros(1, 4, 8), None)

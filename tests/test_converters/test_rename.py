"""RenameTable: one list of rules, renamed both ways, every rule reversible."""
import doctest
import itertools
import re
from collections import OrderedDict

import pytest

from mmdet_detr_plugin.converters import rename
from mmdet_detr_plugin.converters.hf import HF_TABLE
from mmdet_detr_plugin.converters.legacy import LEGACY_TABLE
from mmdet_detr_plugin.converters.mmdet import MMDET_TABLE
from mmdet_detr_plugin.converters.original import RELEASE_TABLE
from mmdet_detr_plugin.converters.rename import RenameTable

TABLES = dict(mmdet=MMDET_TABLE, release=RELEASE_TABLE, hf=HF_TABLE, legacy=LEGACY_TABLE)
# two values for each placeholder any table uses
SAMPLES = dict(coder=['encoder', 'decoder'], attn=['self_attn', 'cross_attn'], i=['0', '11'],
               b=['0', '22'], tail=['weight', 'layer.0.running_var'], rc=['row', 'col'],
               linear=['linear1', 'linear2'], norm=['norm1', 'norm3'], qkv=['q_proj', 'v_proj'],
               fc=['0', '2'], p=['weight', 'bias'], attn_p=['in_proj_bias', 'out_proj.weight'])


@pytest.fixture
def table() -> RenameTable:
    return RenameTable(
        [('neck.proj.{param}', 'neck.convs.0.conv.{param}'),
         ('{coder}.layers.{i}.ffn.linear1.{tail}', '{coder}.layers.{i}.ffn.layers.0.0.{tail}'),
         ('{coder}.layers.{i}.norm{n}.{tail}', '{coder}.layers.{i}.norms.{n}.{tail}'),
         # never reached from the plugin side: the rule above matches first
         ('decoder.layers.{i}.norm3.{tail}', 'decoder.layers.{i}.final_norm.{tail}')],
        placeholders=dict(coder=r'(?:en|de)coder', i=r'\d+', n=r'[123]', tail=r'.+',
                          param=r'weight|bias'),
        shared=['backbone.{tail}'])


def test_docstring_example_runs():
    result = doctest.testmod(rename)
    assert result.attempted == 8 and result.failed == 0


def test_renames_both_ways(table):
    pairs = [('neck.proj.bias', 'neck.convs.0.conv.bias'),
             ('decoder.layers.5.ffn.linear1.weight', 'decoder.layers.5.ffn.layers.0.0.weight'),
             ('encoder.layers.12.norm2.bias', 'encoder.layers.12.norms.2.bias'),
             ('backbone.layer4.2.bn3.running_var', 'backbone.layer4.2.bn3.running_var')]
    for plugin, other in pairs:
        assert table.to_other(plugin) == other
        assert table.to_plugin(other) == plugin


def test_whole_key_must_match_and_first_rule_wins(table):
    assert table.to_other('neck.proj.weight.extra') is None  # {param} is weight|bias
    assert table.to_other('xneck.proj.weight') is None
    assert table.to_other('middle.layers.0.ffn.linear1.weight') is None  # {coder}
    assert table.to_other('encoder.layers.x.norm1.weight') is None  # {i} is digits
    # rule 3 comes first for plugin keys, rule 4 is reached from its other side
    assert table.to_other('decoder.layers.0.norm3.weight') == 'decoder.layers.0.norms.3.weight'
    assert table.to_plugin('decoder.layers.0.final_norm.weight') == \
        'decoder.layers.0.norm3.weight'


def test_rename_keeps_order_and_values_and_reports_unmatched(table):
    weight, bias, extra = object(), object(), object()
    state = OrderedDict([('neck.proj.weight', weight), ('query_embedding.weight', extra),
                         ('backbone.conv1.weight', bias)])
    renamed, unmatched = table.rename(state, to='other')
    assert list(renamed) == ['neck.convs.0.conv.weight', 'backbone.conv1.weight']
    assert renamed['neck.convs.0.conv.weight'] is weight
    assert renamed['backbone.conv1.weight'] is bias
    assert unmatched == ['query_embedding.weight']
    back, unmatched = table.rename(renamed, to='plugin')
    assert list(back) == ['neck.proj.weight', 'backbone.conv1.weight'] and unmatched == []
    with pytest.raises(ValueError, match="to must be 'other' or 'plugin'"):
        table.rename(state, to='mmdet')


def test_two_keys_with_one_new_name_are_refused():
    table = RenameTable([('a.{x}', 'c.{x}'), ('b.{x}', 'c.{x}')], placeholders=dict(x=r'\d'))
    with pytest.raises(ValueError, match="'a.1' and 'b.1' both become 'c.1'"):
        table.rename({'a.1': 0, 'b.1': 1}, to='other')


@pytest.mark.parametrize('rules, match', [
    ([('a.{y}', 'b.{y}')], r"placeholder\(s\) \['y'\] have no regex"),
    ([('a.{x}.{x}', 'b.{x}')], 'appears twice'),
    ([('a.{x}', 'b.0')], 'both sides must use the same placeholders'),
])
def test_badly_written_rules_are_refused(rules, match):
    with pytest.raises(ValueError, match=match):
        RenameTable(rules, placeholders=dict(x=r'\d+'))


@pytest.mark.parametrize('name', list(TABLES))
def test_every_rule_round_trips(name):
    """Each rule, filled with sample values, renames to its other side and
    back by that same rule (no earlier rule of either side takes the key):
    so no two rules give one name, and every table reads the same both ways."""
    table = TABLES[name]
    for placeholder, regex in table.placeholders.items():
        assert placeholder in SAMPLES, f'add samples for {{{placeholder}}}'
        assert all(re.fullmatch(regex, value) for value in SAMPLES[placeholder])
    for plugin, other in table.rules:
        names = sorted(set(re.findall(r'\{(\w+)\}', plugin)))
        for values in itertools.product(*(SAMPLES[n] for n in names)):
            filled = dict(zip(names, values))
            plugin_key, other_key = plugin.format(**filled), other.format(**filled)
            assert table.to_other(plugin_key) == other_key, (plugin, filled)
            assert table.to_plugin(other_key) == plugin_key, (other, filled)

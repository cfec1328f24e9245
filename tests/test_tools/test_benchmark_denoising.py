"""tools/analysis_tools/benchmark_denoising.py: the two models share their
weights, train on the same real batches, and the table gives their ratio."""
import json
import os.path as osp
import sys

import pytest

from test_train_test_resume import CONFIG, REPO, toy_root  # noqa: F401

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import benchmark_denoising  # noqa: E402


def test_without_denoising_is_the_matching_scheme():
    cfg = dict(type='PluginDETR', queries=dict(
        type='PluginDenoisingQueries', num_dn_groups=5,
        queries=dict(type='PluginAnchorPointQueries', num_groups=6)))
    plain = benchmark_denoising.without_denoising(cfg)
    assert plain['queries'] == dict(type='PluginAnchorPointQueries', num_groups=6)
    assert cfg['queries']['type'] == 'PluginDenoisingQueries'  # not edited in place
    with pytest.raises(SystemExit, match='not PluginDenoisingQueries'):
        benchmark_denoising.without_denoising(plain)


def test_benchmark_runs_on_the_demo_config(toy_root, tmp_path, capsys):  # noqa: F811
    out = str(tmp_path / 'dn.json')
    result = benchmark_denoising.main([CONFIG, '--data-root', toy_root, '--batches', '1',
                                       '--warmup', '0', '--iters', '1', '--json', out])
    printed = capsys.readouterr().out
    assert '| with / without |' in printed
    with open(out) as f:
        saved = json.load(f)
    assert saved['ratio'] == pytest.approx(result['median_with_ms'] / result['median_without_ms'])
    assert len(saved['with_denoising_ms']) == len(saved['without_ms']) == 1
    assert saved['batch_size'] == 8
    # the docs block is rebuilt from the saved result
    doc = tmp_path / 'doc.md'
    doc.write_text('<!-- dn-speed -->\n<!-- /dn-speed -->\n')
    benchmark_denoising.main(['--from-json', out, '--doc', str(doc)])
    assert f'| with / without | {saved["ratio"]:.3f}x | |' in doc.read_text()

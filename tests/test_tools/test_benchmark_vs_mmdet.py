"""tools/analysis_tools/benchmark_vs_mmdet.py end to end, at a small image
size and one timed run per row, read through its JSON: every row is
measured, outputs agree with mmdet's DETR (and transformers', when
installed), assignments are equal, and the file records the machine and the
plugin's kernels. The speed figures themselves are the benchmark's
business, not a test's."""
import importlib.util
import json
import os.path as osp
import sys

from test_train_test_resume import run_tool

ROWS = ['train', 'owned', 'inference', 'matching_100', 'matching_300', 'matching_900']


def test_benchmark_runs_every_row_and_agrees(tmp_path):
    out_json = str(tmp_path / 'rows.json')
    run_tool('tools/analysis_tools/benchmark_vs_mmdet.py', '--img-size', '128', '--iters', '1',
             '--warmup', '0', '--pair-repeats', '1', '--pair-steps', '1', '--json', out_json)
    with open(out_json) as f:
        result = json.load(f)
    with_hf = importlib.util.find_spec('transformers') is not None
    assert [row['key'] for row in result['rows']] == ROWS
    for row in result['rows']:
        assert row['plugin_ms'] > 0 and row['mmdet_ms'] > 0
        assert abs(row['speedup'] - row['mmdet_ms'] / row['plugin_ms']) < 1e-9
        assert ('hf_ms' in row) == with_hf
    assert result['memory']['plugin'] > 0 and result['memory']['mmdet'] > 0
    assert [entry['impl'] for entry in result['together']] == ['plugin', 'mmdet']
    assert all(len(entry['pair_s']) == 2 and entry['alone_s'] > 0
               for entry in result['together'])
    # same numbers as mmdet's DETR with the same weights (fp32)
    assert max(result['agreement'].values()) < 1e-5
    assert result['same_assignments'] == [True, True, True]
    if with_hf:
        assert max(result['agreement_hf'].values()) < 1e-5
    # the machine and what the plugin ran
    from mmdet_detr_plugin.accel import cpu
    assert result['machine']['cpu_model'] == cpu.cpu_model()
    assert result['machine']['omp_wait_policy'] == 'PASSIVE'  # set by the tool
    assert result['accel']['linear'] in ('onednn', 'torch')
    assert result['accel']['fold_frozen_bn'] is True
    with_numba = importlib.util.find_spec('numba') is not None
    assert result['matching_kernels'] == (
        dict(solver='auto', cost_kernel='FusedDetrCost') if with_numba else
        dict(solver='scipy', cost_kernel=None))
    assert result['args']['no_prime'] is False


def test_reference_setting_runs_the_plain_model(tmp_path):
    out_json = str(tmp_path / 'rows.json')
    run_tool('tools/analysis_tools/benchmark_vs_mmdet.py', '--accel', 'reference', '--img-size',
             '96', '--iters', '1', '--warmup', '0', '--skip', 'owned', 'inference', 'memory',
             'together', 'hf', '--json', out_json)
    with open(out_json) as f:
        result = json.load(f)
    assert result['accel']['linear'] == 'torch' and not result['accel']['skip_padding']
    assert result['matching_kernels'] == dict(solver='scipy', cost_kernel=None)
    assert [row['key'] for row in result['rows']] == ['train'] + ROWS[3:]
    assert max(result['agreement'].values()) < 1e-5


def _benchmark_rows():
    sys.path.insert(0, osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis_tools'))
    import _benchmark_rows
    return _benchmark_rows


def test_timed_pair_primes_each_call_with_its_own():
    """Each timed call follows an untimed call of the same implementation, so
    a cost one implementation leaves behind (here: a sleep that the next call
    of anyone pays, as glibc's deferred heap trim is) is not timed against
    the next one; with primed=False it is, which is what priming is for."""
    import time
    bench = _benchmark_rows()
    calls, debt = [], [0.0]

    def leaves_debt():
        time.sleep(debt[0])
        calls.append('a')
        debt[0] = 0.2

    def pays():
        time.sleep(debt[0])
        debt[0] = 0.0
        calls.append('b')

    times = bench.timed_pair((leaves_debt, pays), warmup=1, iters=2, device='cpu')
    assert calls == ['a', 'b'] + ['a', 'a', 'b', 'b'] * 2
    assert max(times[1]) < 0.1  # pays() timed after its own call: no debt

    calls.clear()
    debt[0] = 0.0
    times = bench.timed_pair((leaves_debt, pays), warmup=1, iters=2, device='cpu',
                             primed=False)
    assert calls == ['a', 'b'] * 3
    assert min(times[1]) >= 0.2  # a's debt lands in b's timed window

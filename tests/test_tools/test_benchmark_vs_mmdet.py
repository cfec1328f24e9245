"""tools/analysis_tools/benchmark_vs_mmdet.py end to end, at a small image
size and one timed run per row: every row is measured, outputs agree with
mmdet's DETR (and transformers', when installed) and assignments are equal.
The speed figures themselves are the benchmark's business, not a test's."""
import importlib.util
import json

from test_train_test_resume import run_tool

ROWS = ['train step, end to end', 'after the backbone: fwd+bwd', 'inference, 1 image',
        'matching 6 layers, N=100 M=10 B=2', 'matching 6 layers, N=300 M=100 B=8',
        'matching 6 layers, N=900 M=500 B=4']


def test_benchmark_runs_every_row_and_agrees(tmp_path):
    out_json = str(tmp_path / 'rows.json')
    out = run_tool('tools/analysis_tools/benchmark_vs_mmdet.py', '--img-size', '128',
                   '--iters', '1', '--warmup', '0', '--json', out_json)
    with open(out_json) as f:
        result = json.load(f)
    with_hf = importlib.util.find_spec('transformers') is not None

    times = {row['row']: row for row in result['rows'] if 'plugin_ms' in row}
    assert list(times) == ROWS
    for row in times.values():
        assert row['plugin_ms'] > 0 and row['mmdet_ms'] > 0
        assert abs(row['speedup'] - row['mmdet_ms'] / row['plugin_ms']) < 1e-9
        assert (row['hf_ms'] is not None) == with_hf
    memory, = (row for row in result['rows'] if row['row'] == 'peak memory MiB')
    assert memory['plugin'] > 0 and memory['mmdet'] > 0

    # same numbers as mmdet's DETR with the same weights (fp32)
    assert max(result['agreement'].values()) < 1e-5
    assert result['same_assignments'] == [True, True, True]
    if with_hf:
        assert max(result['agreement_hf'].values()) < 1e-5
    assert '| matching 6 layers, N=900 M=500 B=4' in out
    # each timed call after an untimed one of its own (see timed_pair)
    assert 'in alternation, each after an untimed run of its own' in out
    assert result['args']['no_prime'] is False
    # the matching rows say how the plugin matched: the plugin's numba solver
    # and the fused costs when the fast extra is installed (as
    # scripts/install.sh does)
    solver = next(name for name, module in (('numba', 'numba'), ('lapx', 'lap'), ('scipy', 'scipy'))
                  if importlib.util.find_spec(module))
    assert result['args']['solver'] == solver
    fused = 'fused (numba)' if importlib.util.find_spec('numba') else 'eager'
    assert f"plugin's matching rows: solver='{solver}', costs {fused}" in out
    # and how its linear layers multiplied (oneDNN where this PyTorch has it)
    from mmdet_detr_plugin.models.layers import linear
    expected = 'onednn' if linear._ONEDNN_LINEAR is not None else 'aten'
    assert result['cpu_gemm'] == expected
    from mmdet_detr_plugin.models.layers.dropout import generator_from_env
    generator = generator_from_env()  # numpy unless DETR_PLUGIN_DROPOUT_MASK says numba
    assert "plugin's CPU kernels: float32 linear layers on " + (
        'oneDNN' if expected == 'onednn' else 'F.linear, as the others') + (
        f', dropout masks drawn by {generator}') in out


def _benchmark_module():
    import os.path as osp
    path = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis_tools',
                    'benchmark_vs_mmdet.py')
    spec = importlib.util.spec_from_file_location('benchmark_vs_mmdet', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timed_pair_primes_each_call_with_its_own():
    """Each timed call follows an untimed call of the same implementation, so
    a cost one implementation leaves behind (here: a sleep that the next call
    of anyone pays, as glibc's deferred heap trim is) is not timed against
    the next one; with primed=False it is, which is what priming is for."""
    import time
    bench = _benchmark_module()
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

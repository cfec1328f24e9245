"""tools/analysis_tools/benchmark_vs_mmdet.py end to end, at R-18, a small image
size and one timed run per row, read through its JSON: every row is
measured, outputs agree with mmdet's DETR (and transformers', when
installed), assignments are equal, and the file records the machine and the
plugin's kernels. The speed figures themselves are the benchmark's
business, not a test's."""
import importlib.util
import json
import os.path as osp
import sys
from types import SimpleNamespace

import pytest

from test_train_test_resume import run_tool

ROWS = ['train', 'owned', 'inference', 'matching_100', 'matching_300', 'matching_900']


def test_benchmark_runs_every_row_and_agrees(tmp_path):
    out_json = str(tmp_path / 'rows.json')
    # R-18 for time: transformers' DETR has no R-18, its column is checked in the slow test below
    run_tool('tools/analysis_tools/benchmark_vs_mmdet.py', '--depth', '18', '--img-size', '128',
             '--iters', '1', '--warmup', '0', '--skip', 'together', 'onnxruntime', '--json',
             out_json)
    with open(out_json) as f:
        result = json.load(f)
    with_hf = False
    if importlib.util.find_spec('transformers') is not None:
        assert result['hf_column'] == 'not run: its DETR has no ResNet-18 (50, 101 or 152)'
    assert [row['key'] for row in result['rows']] == ROWS
    for row in result['rows']:
        assert row['plugin_ms'] > 0 and row['mmdet_ms'] > 0
        assert abs(row['speedup'] - row['mmdet_ms'] / row['plugin_ms']) < 1e-9
        assert ('hf_ms' in row) == with_hf
    assert result['memory']['plugin'] > 0 and result['memory']['mmdet'] > 0
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

    # the results page and the README's table are written from the JSON
    page, readme = tmp_path / 'benchmark.md', tmp_path / 'README.md'
    readme.write_text('# title\n\n<!-- speed-table -->\nold\n<!-- /speed-table -->\nend\n')
    run_tool('tools/analysis_tools/benchmark_report.py', out_json, '--out', str(page),
             '--readme', str(readme))
    train = result['rows'][0]
    text = readme.read_text()
    assert 'old' not in text and text.endswith('<!-- /speed-table -->\nend\n')

    def ms(value):
        return f'{value:.1f} ms' if value < 100 else f'{value:.0f} ms'

    assert (f"| train step, end to end (loss, backward, clipping, AdamW) | "
            f"{ms(train['plugin_ms'])} | {ms(train['mmdet_ms'])} | "
            f"{train['speedup']:.2f}x |") in text
    assert f"{result['machine']['cpu_model']}, `--accel default`" in page.read_text()


@pytest.mark.slow
def test_two_processes_at_once(tmp_path):
    """The together rows end to end: each implementation alone, then two
    processes of it at once (small: ResNet-18 at 96 px, one pair, one step
    each; slow: six child processes)."""
    out_json = str(tmp_path / 'rows.json')
    run_tool('tools/analysis_tools/benchmark_vs_mmdet.py', '--depth', '18', '--img-size', '96',
             '--skip', 'train', 'owned', 'inference', 'matching', 'memory', 'hf', 'onnxruntime',
             '--pair-repeats', '1', '--pair-steps', '1', '--json', out_json)
    with open(out_json) as f:
        result = json.load(f)
    assert result['rows'] == []
    assert [entry['impl'] for entry in result['together']] == ['plugin', 'mmdet']
    for entry in result['together']:
        assert entry['alone_s'] > 0 and len(entry['pair_s']) == 2 and min(entry['pair_s']) > 0


def test_reference_setting_runs_the_plain_model(tmp_path):
    out_json = str(tmp_path / 'rows.json')
    run_tool('tools/analysis_tools/benchmark_vs_mmdet.py', '--accel', 'reference', '--img-size',
             '96', '--iters', '1', '--warmup', '0', '--skip', 'owned', 'inference', 'memory',
             'together', 'hf', 'onnxruntime', '--json', out_json)
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


def test_together_protocol(tmp_path, monkeypatch, capsys):
    """The parent starts the children, which wait for each other at the
    barrier before timing, and reads each child's median step time."""
    bench = _benchmark_rows()
    barrier = tmp_path / 'barrier'
    barrier.mkdir()
    calls = []
    monkeypatch.setattr(bench, 'train_step_of', lambda impl, args: lambda: calls.append(impl))
    args = SimpleNamespace(steps_of='plugin', barrier=str(barrier), processes=1, steps=3,
                           device='cpu')
    bench.steps_child(args)  # a child: 2 warm-up steps, the barrier, 3 timed steps
    assert calls == ['plugin'] * 5 and len(list(barrier.iterdir())) == 1
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])) == 3

    def child(args, **options):  # a stand-in child: the barrier, then its times
        code = (f'import json, os, time; open(os.path.join({options["barrier"]!r}, '
                f'str(os.getpid())), "w").close()\n'
                f'while len(os.listdir({options["barrier"]!r})) < {options["processes"]}: '
                'time.sleep(0.01)\nprint(json.dumps([0.5, 0.25, 0.75]))')
        return [sys.executable, '-c', code]

    monkeypatch.setattr(bench, 'child_command', child)
    assert bench.step_times_together('plugin', SimpleNamespace(pair_steps=3), 2) == [0.5, 0.5]


@pytest.mark.slow
def test_transformers_column_agrees(tmp_path):
    """R50 (transformers' DETR has bottleneck ResNets only): its column is
    timed and its outputs agree with the plugin's."""
    pytest.importorskip('transformers')
    out_json = str(tmp_path / 'hf.json')
    run_tool('tools/analysis_tools/benchmark_vs_mmdet.py', '--img-size', '64', '--iters', '1',
             '--warmup', '0', '--skip', 'owned', 'matching', 'together', 'memory', 'onnxruntime',
             '--json', out_json)
    with open(out_json) as f:
        result = json.load(f)
    assert result['hf_column'] == 'run'
    assert [row['key'] for row in result['rows']] == ['train', 'inference']
    for row in result['rows']:
        assert row['hf_ms'] > 0 and row['speedup_vs_hf'] == pytest.approx(
            row['hf_ms'] / row['plugin_ms'])
    assert max(result['agreement_hf'].values()) < 1e-5


@pytest.mark.slow
def test_onnxruntime_rows(tmp_path):
    """The ONNX Runtime rows (R-18, small images, no other row): times of the
    three implementations, ratios, agreement; the deployment page's table."""
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    out_json = str(tmp_path / 'onnx.json')
    run_tool('tools/analysis_tools/benchmark_vs_mmdet.py', '--depth', '18', '--iters', '1',
             '--warmup', '0', '--skip', 'train', 'owned', 'inference', 'matching', 'together',
             'memory', 'hf', '--onnx-size', '64', '96', '--onnx-batches', '1', '2',
             '--json', out_json)
    with open(out_json) as f:
        result = json.load(f)
    assert result['rows'] == [] and result['onnxruntime_rows'] is None
    entries = result['onnxruntime']
    assert [(e['batch'], e['size']) for e in entries] == [(1, [64, 96]), (2, [64, 96])]
    for e in entries:
        assert e['onnxruntime_ms'] > 0 and e['plugin_ms'] > 0 and e['mmdet_ms'] > 0
        assert e['vs_mmdet'] == pytest.approx(e['mmdet_ms'] / e['onnxruntime_ms'])
        assert max(e['parity'].values()) < 1e-3
    page = tmp_path / 'deployment.md'
    page.write_text('# d\n\n<!-- onnx-speed -->\nold\n<!-- /onnx-speed -->\nend\n')
    run_tool('tools/analysis_tools/benchmark_report.py', out_json, '--out',
             str(tmp_path / 'bench.md'), '--deployment', str(page))
    text = page.read_text()
    assert 'old' not in text and '| 2 x 64x96 |' in text and text.endswith('end\n')

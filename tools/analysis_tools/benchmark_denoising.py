"""What denoising training costs per step: a config's training step with
its denoising queries against the same model without them.

    python tools/analysis_tools/benchmark_denoising.py [CONFIG] [--data-root data/toy/]
        [--batches 4] [--warmup 2] [--iters 10] [--json OUT.json]
        [--doc docs/denoising.md] [--from-json OUT.json]

CONFIG (default ``configs/detr_r18_toy.py``) must use
``PluginDenoisingQueries``. The model without denoising is the same config
with ``model.queries`` replaced by its matching scheme, and gets the same
weights (the denoising parts aside). Both train on the same real batches of
the config's training set (``--batches`` of them, cycled; the data loading
is not timed) with the config's optimizer wrapper, in alternation, each
timed step right after an untimed one of its own (as
``benchmark_vs_mmdet.py``). The table gives medians, spreads and the ratio
(with / without: the cost of denoising). ``--doc`` writes the table into
the file's ``<!-- dn-speed -->`` block; ``--from-json`` rebuilds it from a
saved result without measuring.
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _openmp import passive_wait_policy  # noqa: E402

passive_wait_policy()  # before torch loads OpenMP

import torch  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import _benchmark_rows as rows  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=osp.join(REPO, 'configs', 'detr_r18_toy.py'))
    parser.add_argument('--data-root', default=None, help='data_root of the config')
    parser.add_argument('--batches', type=int, default=4)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--doc', help='markdown file whose <!-- dn-speed --> block gets the table')
    parser.add_argument('--from-json', help='the table of a saved result; nothing is measured')
    return parser.parse_args(argv)


def without_denoising(model_cfg: dict) -> dict:
    """The model config with ``queries`` replaced by its matching scheme."""
    queries = model_cfg.get('queries') or {}
    if queries.get('type') != 'PluginDenoisingQueries':
        raise SystemExit(f'model.queries is {queries.get("type")}, not PluginDenoisingQueries: '
                         'nothing to compare')
    plain = copy.deepcopy(model_cfg)
    plain['queries'] = copy.deepcopy(queries['queries'])
    return plain


def build_pair(cfg):
    """(model with denoising, model without), the second with the first's
    weights."""
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    from mmengine.logging import MMLogger
    with_dn = MODELS.build(copy.deepcopy(cfg.model))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # init_weights logs every parameter
    with_dn.init_weights()
    logger.setLevel(level)
    without = MODELS.build(without_denoising(cfg.model.to_dict()))
    without.load_state_dict(with_dn.state_dict())  # the checkpoint guard drops the DN parts
    return with_dn.train(), without.train()


def real_batches(cfg, count: int, model):
    """``count`` preprocessed training batches of the config's data."""
    from mmengine.runner import Runner
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg['num_workers'] = 0
    loader_cfg['persistent_workers'] = False
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    batches = []
    for data in loader:
        batch = model.data_preprocessor(data, True)
        batches.append((batch['inputs'], batch['data_samples']))
        if len(batches) == count:
            return batches
    return batches


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
        report(result, args.doc)
        return result
    from mmengine.config import Config

    import mmdet_detr_plugin  # noqa: F401
    from mmdet_detr_plugin.utils.config import apply_data_root
    cfg = Config.fromfile(args.config)
    if args.data_root:
        apply_data_root(cfg, args.data_root, cfg.get('data_root', ''))
    torch.manual_seed(args.seed)
    with_dn, without = build_pair(cfg)
    batches = real_batches(cfg, args.batches, with_dn)
    counter = [0, 0]

    def cycling(i: int):
        def step():
            inputs, samples = batches[counter[i] % len(batches)]
            counter[i] += 1
            with rows.autocast('cpu', 'fp32'):
                losses = (with_dn, without)[i].loss(inputs, samples)
            wrappers[i].update_params(sum(v for k, v in losses.items() if 'loss' in k))
        return step

    from mmengine.optim import build_optim_wrapper
    wrappers = [build_optim_wrapper(m, copy.deepcopy(cfg.optim_wrapper))
                for m in (with_dn, without)]
    times = rows.timed_pair([cycling(0), cycling(1)], args.warmup, args.iters, 'cpu')
    medians = [statistics.median(t) * 1000 for t in times]
    result = dict(config=osp.relpath(osp.abspath(args.config), REPO),
                  batch_size=int(batches[0][0].shape[0]), threads=torch.get_num_threads(),
                  iters=args.iters, with_denoising_ms=times[0], without_ms=times[1],
                  median_with_ms=medians[0], median_without_ms=medians[1],
                  ratio=medians[0] / medians[1])
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    report(result, args.doc)
    return result


def table(result: dict) -> str:
    lines = [f'Train step of `{result["config"]}` (batch {result["batch_size"]}, '
             f'{result["threads"]} thread(s), {result["iters"]} steps each, in alternation):',
             '', '| model | median | min..max |', '|---|---|---|']
    for name, key in (('with denoising', 'with_denoising_ms'), ('without', 'without_ms')):
        t = result[key]
        lines.append(f'| {name} | {statistics.median(t) * 1000:.0f} ms | '
                     f'{min(t) * 1000:.0f}..{max(t) * 1000:.0f} ms |')
    lines.append(f'| with / without | {result["ratio"]:.3f}x | |')
    return '\n'.join(lines)


def report(result: dict, doc: str = None) -> None:
    text = table(result)
    print(text)
    if doc:
        from seed_summary import insert
        insert(doc, 'dn-speed', text)


if __name__ == '__main__':
    main()

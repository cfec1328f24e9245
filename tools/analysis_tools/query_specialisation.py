"""Plot where each object query predicts, over a test split (DETR paper, fig. 7).

    python tools/analysis_tools/query_specialisation.py CONFIG CHECKPOINT \
        --out queries.png [--max-images 500] [--max-panels 20] [--cfg-options k=v ...]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))
from _openmp import passive_wait_policy  # noqa: E402

passive_wait_policy()  # before torch loads OpenMP (tools/_openmp.py)

from mmengine.config import DictAction  # noqa: E402
from mmengine.runner import Runner, load_checkpoint  # noqa: E402
from train import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--max-images', type=int, default=None)
    parser.add_argument('--max-panels', type=int, default=20)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmdet_detr_plugin.apis import collect_query_boxes, plot_query_centres

    register_all_modules()
    cfg = load_config(args.config, args.cfg_options)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.to(args.device)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    boxes = collect_query_boxes(model, loader, args.max_images)
    plot_query_centres(boxes, args.out, args.max_panels)
    print(f'{boxes.shape[0]} queries over {boxes.shape[1]} images drawn to {args.out}')


if __name__ == '__main__':
    main()

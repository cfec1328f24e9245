"""Inference speed (FPS) of a config and checkpoint: mmdet's tools/analysis_tools/benchmark.py.

    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT] [--task inference|dataloader|dataset_and_inference] [--max-iter 2000] [--log-interval 50] [--fuse-conv-bn]
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _mmdet_tool import run_mmdet_tool  # noqa: E402

if __name__ == '__main__':
    run_mmdet_tool('analysis_tools/benchmark.py')

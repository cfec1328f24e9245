"""Draw a config's training images after its pipeline: mmdet's
tools/analysis_tools/browse_dataset.py.

    python tools/analysis_tools/browse_dataset.py CONFIG --output-dir DIR [--not-show]
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _mmdet_tool import run_mmdet_tool  # noqa: E402

if __name__ == '__main__':
    run_mmdet_tool('analysis_tools/browse_dataset.py')

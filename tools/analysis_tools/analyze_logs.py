"""Plot loss/metric curves or compute training time from a json log: mmdet's
tools/analysis_tools/analyze_logs.py.

    python tools/analysis_tools/analyze_logs.py plot_curve WORK_DIR/TIMESTAMP/vis_data/scalars.json --keys loss_cls --out curve.png
    python tools/analysis_tools/analyze_logs.py cal_train_time WORK_DIR/TIMESTAMP/vis_data/scalars.json
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _mmdet_tool import run_mmdet_tool  # noqa: E402

if __name__ == '__main__':
    run_mmdet_tool('analysis_tools/analyze_logs.py')

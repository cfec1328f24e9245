"""FLOPs and parameters of a config: mmdet's tools/analysis_tools/get_flops.py.

    python tools/analysis_tools/get_flops.py CONFIG [--num-images 100]

Adds a flop count for the fused attention kernel the plugin uses (mmengine
has none), so that attention is counted as it is for mmdet's DETR.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _mmdet_tool import run_mmdet_tool  # noqa: E402

if __name__ == '__main__':
    from mmdet_detr_plugin.utils.flops import register_sdpa_flops
    register_sdpa_flops()
    run_mmdet_tool('analysis_tools/get_flops.py')

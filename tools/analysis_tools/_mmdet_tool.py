"""Run one of MMDetection's own tools (shipped inside the mmdet package) as is.

The plugin needs nothing special from them: a plugin config loads the plugin
through ``custom_imports`` when the tool reads it.
"""
import os.path as osp
import runpy
import sys


def run_mmdet_tool(relative_path: str) -> None:
    """Execute ``mmdet/.mim/tools/<relative_path>`` with this process's argv."""
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', relative_path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'mmdet {mmdet.__version__} does not ship tools/{relative_path} '
                                f'(looked for {path})')
    sys.argv[0] = path
    runpy.run_path(path, run_name='__main__')

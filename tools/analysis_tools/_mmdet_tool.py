"""Run one of MMDetection's own tools (shipped inside the mmdet package).

A plugin config loads the plugin through ``custom_imports`` when the tool
reads it. As in the plugin's train and test tools, OpenMP's threads sleep
when idle (``tools/_openmp.py``), and
``--cfg-options data_root=DIR`` moves the data sets and evaluators to DIR
(mmdet's tools would change the ``data_root`` variable alone, which the data
sets no longer read once the file is parsed).
"""
import os.path as osp
import runpy
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _openmp import passive_wait_policy  # noqa: E402

passive_wait_policy()  # before torch loads OpenMP (tools/_openmp.py)


def carry_data_root() -> None:
    """Make ``Config.merge_from_dict`` apply a ``data_root`` option to the
    data sets and evaluators, in this process."""
    from mmengine.config import Config

    from mmdet_detr_plugin.utils.config import merge_options
    merge = Config.merge_from_dict

    def merge_and_carry(self, options: dict, allow_list_keys: bool = True) -> None:
        merge_options(self, options,
                      lambda cfg, opts: merge(cfg, opts, allow_list_keys=allow_list_keys))

    Config.merge_from_dict = merge_and_carry


def run_mmdet_tool(relative_path: str) -> None:
    """Execute ``mmdet/.mim/tools/<relative_path>`` with this process's argv."""
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', relative_path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'mmdet {mmdet.__version__} does not ship tools/{relative_path} '
                                f'(looked for {path})')
    carry_data_root()
    sys.argv[0] = path
    runpy.run_path(path, run_name='__main__')

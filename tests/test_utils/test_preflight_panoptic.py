"""The tools' preflight: a panoptic config without panopticapi fails at once,
naming the config, the types that need it and the install step."""
import importlib.util
import os.path as osp
import sys

import pytest
from mmengine.config import Config

from mmdet_detr_plugin.utils.preflight import check_panopticapi

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
INSTALL = r'bash scripts/install\.sh, or pip install --no-deps panopticapi-lite'


def _config(evaluator: str = 'CocoPanopticMetric', loader: str = 'LoadImageFromFile') -> Config:
    return Config(dict(
        train_dataloader=dict(dataset=dict(type='PluginCocoPanopticDataset',
                                           pipeline=[dict(type=loader)])),
        val_evaluator=[dict(type=evaluator), dict(type='CocoMetric', metric=['segm'])]))


@pytest.fixture
def no_panopticapi(monkeypatch):
    monkeypatch.setitem(sys.modules, 'panopticapi', None)  # import raises ImportError


@pytest.mark.parametrize('cfg, used', [
    (_config(), 'CocoPanopticMetric'),
    (_config('CocoMetric', 'LoadPanopticAnnotations'), 'LoadPanopticAnnotations'),
    (_config('CocoMetric', 'PluginLoadPanopticAnnotations'), 'PluginLoadPanopticAnnotations'),
    (_config(loader='PluginLoadPanopticAnnotations'),
     'CocoPanopticMetric, PluginLoadPanopticAnnotations'),
])
def test_panoptic_types_need_panopticapi(no_panopticapi, cfg, used):
    with pytest.raises(ImportError, match=f'my_config.py uses {used}, .*{INSTALL}'):
        check_panopticapi(cfg, 'my_config.py')


def test_other_configs_or_installed_panopticapi_pass(monkeypatch):
    check_panopticapi(_config())  # panopticapi is installed here
    monkeypatch.setitem(sys.modules, 'panopticapi', None)
    check_panopticapi(_config('CocoMetric'))


def test_train_and_test_tools_run_the_check(no_panopticapi, tmp_path, monkeypatch):
    # tools/test.py loads its config through tools/train.py's load_config
    config = tmp_path / 'panoptic_config.py'
    config.write_text("val_evaluator = dict(type='CocoPanopticMetric')\n")
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')  # train.py would set it for the process
    monkeypatch.setattr(sys, 'path', list(sys.path))  # train.py puts tools/ on the path
    spec = importlib.util.spec_from_file_location(
        'plugin_train_tool', osp.join(REPO_ROOT, 'tools', 'train.py'))
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    with pytest.raises(ImportError, match=f'panoptic_config.py uses CocoPanopticMetric.*{INSTALL}'):
        train.load_config(str(config))

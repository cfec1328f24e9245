"""Install the DETR plugin for MMDetection 3.x.

The heavy stack (torch, mmcv with compiled ops, mmdet) is set up by
``scripts/install.sh``; this file declares the package and its direct needs.
"""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    namespace: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmdet_detr_plugin', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mmdet_detr_plugin',
    version=read_version(),
    description='DETR (Carion et al. 2020) as MMDetection 3.x components',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmdet_detr_plugin', 'mmdet_detr_plugin.*']),
    python_requires='>=3.8',
    install_requires=[
        'mmdet>=3.3.0,<3.4',
        'mmengine>=0.10.7,<0.11',
        'mmcv>=2.1.0,<2.2.0',
        'scipy',
        'pycocotools',
    ],
    extras_require={
        'tests': ['pytest'],
        'benchmark': ['transformers'],
        # mmdet's analysis tools (tools/analysis_tools/benchmark.py, analyze_logs.py)
        'analysis': ['psutil', 'seaborn', 'matplotlib'],
        # the compiled CPU kernels of model.accel: fused matching costs, the
        # assignment solver, dropout masks (numba)
        'fast': ['numba'],
        # ONNX export and ONNX Runtime inference (tools/deployment, --backend onnxruntime)
        'deploy': ['onnx', 'onnxscript', 'onnxruntime'],
    },
    license='Apache-2.0',
    zip_safe=False,
)

#!/usr/bin/env bash
# Set up a Python environment with the plugin's stack:
#   torch 2.14.1, torchvision 0.29.1, mmengine 0.10.7, mmcv 2.1.0 (compiled ops),
#   mmdet 3.3.0, scipy, pycocotools, panopticapi, and this package in editable mode.
#
# mmcv 2.1.0 ships on PyPI only as a source archive, and that archive does not build
# against torch 2.14 as it is: its setup.py asks for C++17 while torch's headers need
# C++20, and it imports pkg_resources (gone from setuptools 81). This script patches
# the flag, builds the wheel once (about 17 minutes on 2 cores) and caches it under
# $DETR_PLUGIN_CACHE, so that later installs take seconds.
#
# CUDA ops are built when nvcc is found and a GPU answers (or FORCE_CUDA=1 is set);
# CPU ops otherwise. The cached wheel is keyed on that choice.
#
# Environment:
#   VENV                 where to create the environment (default: .venv in the repo)
#   PYTHON               interpreter to build it from (default: python3.11, else python3)
#   DETR_PLUGIN_CACHE    wheel cache (default: ~/.cache/mmdet_detr_plugin)
#   MAX_JOBS             parallel compile jobs for mmcv (default: number of cores)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$repo/.venv}
cache=${DETR_PLUGIN_CACHE:-$HOME/.cache/mmdet_detr_plugin}
python_bin=${PYTHON:-$(command -v python3.11 || command -v python3)}

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
MMENGINE_VERSION=0.10.7
MMDET_VERSION=3.3.0

log() { printf '[install] %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv with $python_bin"
  "$python_bin" -m venv "$venv"
fi
py="$venv/bin/python"
pip() { "$py" -m pip "$@"; }

have() {  # have PKG VERSION -> 0 when that exact version is installed
  [ "$("$py" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null)" = "$2" ]
}

if ! have torch "$TORCH_VERSION" || ! have torchvision "$TORCHVISION_VERSION"; then
  log "installing torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION"
  pip install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi
# torch needs setuptools >= 77 for its extension builder; mmcv's setup.py needs < 81.
pip install -q "setuptools>=77,<81" wheel ninja

# Which flavour of mmcv ops to build.
cuda=0
if [ "${FORCE_CUDA:-0}" = 1 ]; then
  cuda=1
elif command -v nvcc >/dev/null 2>&1 && "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  cuda=1
fi
flavour=$([ "$cuda" = 1 ] && echo cuda || echo cpu)
py_tag=$("$py" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
wheel_dir="$cache/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$flavour-$py_tag"

if ! have mmcv "$MMCV_VERSION"; then
  wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    log "building mmcv $MMCV_VERSION with $flavour ops (one time, ~17 min on 2 cores; cached in $wheel_dir)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    pip download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$work/sdist"
    tar xzf "$work"/sdist/mmcv-"$MMCV_VERSION".tar.gz -C "$work"
    src="$work/mmcv-$MMCV_VERSION"
    sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' "$src/setup.py"
    mkdir -p "$wheel_dir"
    (cd "$src" && MMCV_WITH_OPS=1 FORCE_CUDA=$cuda MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$work/wheel" .)
    mv "$work"/wheel/mmcv-*.whl "$wheel_dir"/
    wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)
  else
    log "using cached $wheel"
  fi
  pip install -q --no-deps "$wheel"
  # mmcv's own run-time requirements (installed without deps above).
  pip install -q addict packaging Pillow pyyaml yapf opencv-python
fi

log "installing mmengine $MMENGINE_VERSION, mmdet $MMDET_VERSION and the plugin"
pip install -q "mmengine==$MMENGINE_VERSION" "mmdet==$MMDET_VERSION" scipy pycocotools matplotlib pytest
# what mmdet's analysis tools import (benchmark.py: psutil; analyze_logs.py: seaborn)
pip install -q psutil seaborn
# panopticapi (COCO panoptic PNG codec and PQ statistics) for mmdet's CocoPanopticMetric and
# the panoptic loaders. panopticapi-lite is the same package on PyPI; --no-deps because it
# pins numpy<2, while its code runs on numpy 2 (tests/test_datasets/test_panoptic_loading.py
# computes PQ with it end to end)
pip install -q --no-deps panopticapi-lite
# the plugin's "fast" extra: numba, for the compiled CPU kernels of model.accel
# (fused matching costs and the assignment solver in dense scenes, optional dropout
# masks); the plugin runs without it
pip install -q numba
# the plugin's "deploy" extra: ONNX export (onnx, onnxscript: torch's exporter) and
# ONNX Runtime inference (tools/deployment/pytorch2onnx.py, tools/test.py --backend onnxruntime)
pip install -q onnx onnxscript onnxruntime
pip install -q --no-deps --no-build-isolation -e "$repo"
# the benchmark's optional third column (never a dependency of the plugin);
# the tests that compare with it skip when it is missing
log "installing transformers for the benchmark's comparison (optional)"
pip install -q transformers || log "transformers not installed: the benchmark runs without its column"

"$py" - <<'PY'
import torch, torchvision, mmcv, mmengine, mmdet
from mmcv.ops import nms  # compiled ops are there
from panopticapi.utils import rgb2id  # panoptic data and CocoPanopticMetric
import onnx, onnxruntime, onnxscript  # ONNX export and ONNX Runtime
import mmdet_detr_plugin
print(f'[install] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, '
      f'mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, '
      f'mmdet_detr_plugin {mmdet_detr_plugin.__version__}')
PY

#!/usr/bin/env bash
# The main job on the toy data set: generate it, train DETR from scratch,
# evaluate with mmdet's CocoMetric, and draw the predictions.
#   PYTHON=.venv/bin/python bash scripts/demo.sh
# Environment: DEMO_DIR (default work_dirs/demo), DATA_DIR (default data/toy),
#              DEMO_CONFIG (default configs/detr_r18_toy.py).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
work=${DEMO_DIR:-work_dirs/demo}
data=${DATA_DIR:-data/toy}
config=${DEMO_CONFIG:-configs/detr_r18_toy.py}

echo "== 1/5 toy data set in $data"
"$py" tools/misc/make_toy_dataset.py --out-dir "$data" --seed 0

echo "== 2/5 training $config (logs and checkpoints in $work)"
"$py" tools/train.py "$config" --work-dir "$work" --cfg-options data_root="$data/"

ckpt=$(cat "$work/last_checkpoint")
echo "== 3/5 COCO evaluation of $ckpt"
"$py" tools/test.py "$config" "$ckpt" --work-dir "$work" --cfg-options data_root="$data/" \
  --show-dir predictions

echo "== 4/5 pictures: boxes and each kept query's cross-attention"
"$py" tools/demo.py "$data/val" "$config" "$ckpt" --out-dir "$work/demo_pictures" \
  --max-images 8 --attention --score-thr 0.4

echo "== 5/5 where each query predicts over the val split"
"$py" tools/analysis_tools/query_specialisation.py "$config" "$ckpt" \
  --out "$work/demo_pictures/query_specialisation.png" --cfg-options data_root="$data/"

echo
echo "COCO metrics:                       above (and in $work/*/*.json)"
echo "all validation predictions drawn:   $work/*/predictions/"
echo "boxes and cross-attention maps:     $work/demo_pictures/"
echo "query specialisation:               $work/demo_pictures/query_specialisation.png"

#!/usr/bin/env bash
# DETR panoptic segmentation on the toy panoptic set (docs/panoptic.md): generate it, train
# the box detector on things and stuff (stage 1), freeze it and train the mask head (stage
# 2), score with mmdet's CocoPanopticMetric (PQ / SQ / RQ) and CocoMetric (box and mask AP),
# compare with filling each kept box as its mask, and draw the panoptic segmentations.
#   PYTHON=.venv/bin/python bash scripts/panoptic_demo.sh
# Environment: DEMO_DIR (default work_dirs/panoptic_demo), DATA_DIR (default
#              data/toy_panoptic), SUMMARY (optional: copy summary.json there).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
work=${DEMO_DIR:-work_dirs/panoptic_demo}
data=${DATA_DIR:-data/toy_panoptic}
boxes_cfg=configs/detr_r18_toy-panoptic.py
masks_cfg=configs/detr-panoptic_r18_toy.py
root=(--cfg-options data_root="$data/")

echo "== 1/6 toy panoptic data set in $data"
"$py" tools/misc/make_toy_dataset.py --panoptic --out-dir "$data" --seed 0

echo "== 2/6 stage 1: the box detector on things and stuff ($boxes_cfg)"
start=$(date +%s)
"$py" tools/train.py "$boxes_cfg" --work-dir "$work/boxes" "${root[@]}"
boxes_ckpt=$(cat "$work/boxes/last_checkpoint")
boxes_s=$(( $(date +%s) - start ))

echo "== 3/6 stage 2: detector frozen, attention maps and mask head ($masks_cfg)"
start=$(date +%s)
"$py" tools/train.py "$masks_cfg" --work-dir "$work/masks" "${root[@]}" load_from="$boxes_ckpt"
masks_ckpt=$(cat "$work/masks/last_checkpoint")
masks_s=$(( $(date +%s) - start ))

echo "== 4/6 mmdet's panoptic evaluation of $masks_ckpt"
"$py" tools/test.py "$masks_cfg" "$masks_ckpt" --work-dir "$work/test_masks" "${root[@]}"

echo "== 5/6 the baseline: each kept box filled as its mask (same model, same queries)"
"$py" tools/test.py "$masks_cfg" "$masks_ckpt" --work-dir "$work/test_boxes" "${root[@]}" \
  model.test_cfg.panoptic.masks=boxes

echo "== 6/6 pictures of the panoptic segmentation"
"$py" tools/demo.py "$data/val" "$masks_cfg" "$masks_ckpt" --out-dir "$work/pictures" \
  --max-images 8

echo
"$py" tools/analysis_tools/panoptic_summary.py \
  --run "mask head" "$work/test_masks" --run "boxes as masks" "$work/test_boxes" \
  --json "$work/summary.json" --extra "stage1_seconds=$boxes_s" "stage2_seconds=$masks_s"
if [ -n "${SUMMARY:-}" ]; then cp "$work/summary.json" "$SUMMARY"; fi
echo
echo "training time: stage 1 ${boxes_s} s, stage 2 ${masks_s} s (with the data loading)"
echo "PQ tables:                 above (and in $work/test_*/*/*.json)"
echo "panoptic segmentations:    $work/pictures/"

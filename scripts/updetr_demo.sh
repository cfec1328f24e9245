#!/usr/bin/env bash
# UP-DETR on the toy data, on a CPU (docs/up_detr.md): does pre-training the transformer on
# unlabeled images make fine-tuning on a few labeled ones converge faster and end higher?
#   PYTHON=.venv/bin/python bash scripts/updetr_demo.sh        (or: make updetr-demo)
# 1. three generated sets: 1000 labeled images (seed 0) for the backbone, 3000 images (seed 1)
#    whose labels are thrown away, 300 labeled images + 200 for validation (seed 2);
# 2. a backbone: configs/detr_r18-c4_toy.py trained on the first set, then frozen for good;
# 3. UP-DETR pre-training of the transformer on the unlabeled images;
# 4. fine-tuning on the 300 images from the pre-trained transformer and from a random one,
#    same frozen backbone, same steps, for each seed;
# 5. the curves (docs/up_detr/curves.{json,png}, the table of docs/up_detr.md) and pictures
#    of the pretext task.
# 6. with LONG_ITERS set (e.g. 4500), both arms once more (seed 0) for LONG_ITERS steps, to
#    see where the curves go past the short schedule.
# Environment: WORK (default work_dirs/updetr_demo), DATA (default data/updetr-toy),
#              SEEDS (default "0 1 2"), BACKBONE_ITERS (1400), PRETRAIN_ITERS (3000),
#              FINETUNE_ITERS (1500), LONG_ITERS (default: none), DOCS (default
#              docs/up_detr; empty: do not write docs).
# Steps whose checkpoint exists are not run again.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
work=${WORK:-work_dirs/updetr_demo}
data=${DATA:-data/updetr-toy}
seeds=${SEEDS:-0 1 2}
backbone_iters=${BACKBONE_ITERS:-1400}
pretrain_iters=${PRETRAIN_ITERS:-3000}
finetune_iters=${FINETUNE_ITERS:-1500}
long_iters=${LONG_ITERS:-}
docs=${DOCS-docs/up_detr}

# the data keys of a toy config, pointed at one generated set
data_opts() {
  echo "train_dataloader.dataset.data_root=$1/ val_dataloader.dataset.data_root=$1/" \
       "test_dataloader.dataset.data_root=$1/ val_evaluator.ann_file=$1/annotations/val.json" \
       "test_evaluator.ann_file=$1/annotations/val.json"
}

echo "== 1/5 data in $data"
"$py" tools/misc/make_toy_dataset.py --out-dir "$data/backbone" --seed 0
"$py" tools/misc/make_toy_dataset.py --out-dir "$data/unlabeled" --seed 1 --num-train 3000 \
  --num-val 0
rm -rf "$data/unlabeled/annotations" "$data/unlabeled/val"  # images only
"$py" tools/misc/make_toy_dataset.py --out-dir "$data/labeled" --seed 2 --num-train 300 \
  --num-val 200

backbone="$work/backbone/iter_$backbone_iters.pth"
if [ ! -f "$backbone" ]; then
  echo "== 2/5 backbone: configs/detr_r18-c4_toy.py, $backbone_iters steps on $data/backbone"
  "$py" tools/train.py configs/detr_r18-c4_toy.py --work-dir "$work/backbone" --cfg-options \
    $(data_opts "$data/backbone") train_cfg.max_iters="$backbone_iters" \
    train_cfg.val_interval="$backbone_iters" default_hooks.checkpoint.interval="$backbone_iters"
fi

pretrained="$work/pretrain/iter_$pretrain_iters.pth"
if [ ! -f "$pretrained" ]; then
  echo "== 3/5 UP-DETR pre-training, $pretrain_iters steps on $data/unlabeled (no labels)"
  "$py" tools/train.py configs/up-detr-pretrain_r18_toy.py --work-dir "$work/pretrain" \
    --cfg-options train_dataloader.dataset.data_root="$data/unlabeled/" \
    model.backbone.init_cfg.checkpoint="$backbone" train_cfg.max_iters="$pretrain_iters" \
    default_hooks.checkpoint.interval="$pretrain_iters"
fi

# fine-tune one arm: run dir, seed, steps, validation interval, init option
finetune() {
  if [ -f "$1/iter_$3.pth" ]; then return; fi
  "$py" tools/train.py configs/up-detr_r18_toy.py --work-dir "$1" --cfg-options \
    $(data_opts "$data/labeled") "$5" model.backbone.init_cfg.checkpoint="$backbone" \
    randomness.seed="$2" train_cfg.max_iters="$3" train_cfg.val_interval="$4" \
    default_hooks.checkpoint.interval="$3" param_scheduler.1.end="$3" \
    "param_scheduler.1.milestones=[$(( $3 * 4 / 5 ))]"
}

echo "== 4/5 fine-tuning on $data/labeled: seeds $seeds, from UP-DETR and from scratch"
updetr_runs=() scratch_runs=()
for seed in $seeds; do
  for arm in updetr scratch; do
    run="$work/finetune/${arm}_seed$seed"
    if [ "$arm" = updetr ]; then init="load_from=$pretrained"; updetr_runs+=("$run")
    else init="load_from=None"; scratch_runs+=("$run"); fi
    finetune "$run" "$seed" "$finetune_iters" 250 "$init"
  done
done

echo "== 5/5 curves and pictures"
out=${docs:-$work}
mkdir -p "$out"
md=()
if [ -n "$docs" ]; then md=(--markdown docs/up_detr.md); fi
"$py" tools/analysis_tools/updetr_curves.py --arm up-detr "${updetr_runs[@]}" \
  --arm scratch "${scratch_runs[@]}" --json "$out/curves.json" --plot "$out/curves.png" "${md[@]}"
"$py" tools/analysis_tools/draw_query_patches.py configs/up-detr-pretrain_r18_toy.py \
  "$pretrained" --out-dir "$out/pretext" --num-images 4 --cfg-options \
  train_dataloader.dataset.data_root="$data/unlabeled/"

if [ -n "$long_iters" ]; then
  echo "== 6 both arms, seed 0, for $long_iters steps"
  finetune "$work/finetune_long/updetr_seed0" 0 "$long_iters" 500 "load_from=$pretrained"
  finetune "$work/finetune_long/scratch_seed0" 0 "$long_iters" 500 "load_from=None"
  "$py" tools/analysis_tools/updetr_curves.py --arm up-detr "$work/finetune_long/updetr_seed0" \
    --arm scratch "$work/finetune_long/scratch_seed0" --json "$out/curves_long.json" \
    --plot "$out/curves_long.png" "${md[@]}" --marker updetr-curves-long
fi

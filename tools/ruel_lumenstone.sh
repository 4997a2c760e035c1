#!/usr/bin/env bash
# RUEL on LumenStone: five heterogeneous learners (lumenstone_cpu + overrides: losses, STN,
# encoders) trained one after another, ranked on the hold-out of the training images, every
# RUEL-n-PV/WV scored on the val images (Tables 5-7), and one full-resolution prediction timed.
#
#   tools/ruel_lumenstone.sh                     # seed 0: 5 learners of 11-31 min on one core
#                                                # (AMD EPYC 11-13, Intel Xeon beside a job 25-31)
#                                                # + ~8 min of RUEL scoring and prediction
#   SEEDS="1 2" tools/ruel_lumenstone.sh         # the seeds variant: two more seeds, then
#                                                # mean ± std over the seeds found in OUT
#   SEEDS=1 EXTRA=train.threads=1 tools/ruel_lumenstone.sh &   # two seeds side by side,
#   SEEDS=2 EXTRA=train.threads=1 tools/ruel_lumenstone.sh     # one thread each (~70 min)
#   WITH_RESUNET=1 tools/ruel_lumenstone.sh      # adds the paper's Res-UNet-50 (+STN, random
#                                                # init, ~25 min) as a sixth learner
#
# Environment: DATA (default $ENSEMBLAB_DATA/mineral/lumenstone, ENSEMBLAB_DATA defaulting to
# ../shared/data), OUT (default runs/lumenstone), RANK_BY (default miou), SEEDS (default 0),
# EXTRA (overrides added to every learner). A learner whose run folder holds
# train_summary.json is not trained again, so an interrupted run continues where it stopped.
set -euo pipefail

DATA=${DATA:-${ENSEMBLAB_DATA:-../shared/data}/mineral/lumenstone}
OUT=${OUT:-runs/lumenstone}
RANK_BY=${RANK_BY:-miou}
SEEDS=${SEEDS:-0}
EXTRA=${EXTRA:-}

NAMES=(lite0_ce lite0_dice lite0_focal_stn lite1_dice lite2_ce_stn)
OVERRIDES=(
  ""
  "loss.name=ce+dice"
  "loss.name=ce+focal model.stn=trained"
  "model.encoder=efficientnet_lite1 loss.name=ce+dice"
  "model.encoder=efficientnet_lite2 model.stn=trained"
)
if [[ -n "${WITH_RESUNET:-}" ]]; then
  NAMES+=(resunet50_focal_stn)
  OVERRIDES+=("model.arch=resunet model.encoder=resnet50 model.pretrained=false \
loss.name=ce+focal model.stn=trained")
fi

for seed in $SEEDS; do
  dir="$OUT/s$seed"
  runs=()
  for i in "${!NAMES[@]}"; do
    run="$dir/${NAMES[$i]}"
    runs+=("$run")
    if [[ -f "$run/train_summary.json" ]]; then
      echo "[seed $seed] ${NAMES[$i]}: trained already"
      continue
    fi
    rm -rf "$run"
    mkdir -p "$dir"
    echo "[seed $seed] ${NAMES[$i]}: training ($(date +%H:%M)), log $run.log"
    # shellcheck disable=SC2086  # the overrides are words
    ensemblab mineral_ruel train --config lumenstone_cpu --data "$DATA" --out "$run" \
      --device cpu seed="$seed" ${OVERRIDES[$i]} $EXTRA > "$run.log" 2>&1
    python -c "import json, sys; s = json.load(open(sys.argv[1])); \
print(f\"  {s['seconds'] / 60:.1f} min, {s['seconds_per_step']:.2f} s/step, \
best hold-out mIoU {100 * s['best_val_miou']:.2f}\")" "$run/train_summary.json"
  done
  echo "[seed $seed] RUEL ($(date +%H:%M))"
  ensemblab mineral_ruel ensemble --runs "${runs[@]}" --rank-by "$RANK_BY" --data "$DATA" \
    --out "$dir/ruel" --device cpu
  first_val=$(find "$DATA/raw/val" -name '*.jpg' | sort | head -n 1)
  ensemblab mineral_ruel predict --run "$dir/ruel" --input "$first_val" \
    --out "$dir/predict_full_resolution" --device cpu
  ensemblab mineral_ruel predict --run "${runs[0]}" --input "$first_val" \
    --out "$dir/predict_full_resolution_${NAMES[0]}" --device cpu
done

ensembles=("$OUT"/s*/ruel)
if (( ${#ensembles[@]} > 1 )); then
  ensemblab mineral_ruel seeds --ensembles "${ensembles[@]}" --out "$OUT"
fi
echo "tables: $OUT/s*/ruel/tables.md; curves: $OUT/s*/*/curves.png"

#!/usr/bin/env bash
# TPE searches of the FRE paper on the CPU proxy (configs/search_proxy.yaml: sstem_cpu at half
# resolution, 15 epochs, ~1.5 CPU-minutes per trial), with the proxy's seed noise to judge them:
#   1. the proxy without FRE for seeds 0, 1, 2, scored on the validation slices (the noise);
#   2. the (B, X) search, 50 trials (paper), and the supervision lambda search, 15 trials,
#      side by side with one thread each.
# Each search lives in OUT/<space>/study.db; running this again resumes where it stopped.
# About 75 CPU-minutes for the (B, X) search and 25 for lambda: ~1.5 h on two idle cores.
#
#   tools/fre_search_proxy.sh [OUT] [DATA]   (defaults: runs/search_proxy, ssTEM stack1)
set -euo pipefail

OUT=${1:-runs/search_proxy}
DATA=${2:-${ENSEMBLAB_DATA:-data}/em/drosophila_sstem/stack1}
export OMP_NUM_THREADS=1
mkdir -p "$OUT/logs"

for seed in 0 1 2; do
    run="$OUT/noise/seed$seed"
    resume=()
    [ -f "$run/config.yaml" ] && resume=(--resume)
    ensemblab fre_unet train --config search_proxy --data "$DATA" --out "$run" --device cpu \
        "${resume[@]}" seed="$seed" > "$OUT/logs/noise_seed$seed.log" 2>&1 &
    [ "$seed" = 1 ] && wait
done
wait
ensemblab fre_unet evaluate --run "$OUT/noise" --data "$DATA" --device cpu --split val

ensemblab fre_unet search --config search_proxy --data "$DATA" --out "$OUT/fre" --device cpu \
    --space fre --trials 50 > "$OUT/logs/search_fre.log" 2>&1 & pid_fre=$!
ensemblab fre_unet search --config search_proxy --data "$DATA" --out "$OUT/supervision" \
    --device cpu --space supervision --trials 15 > "$OUT/logs/search_supervision.log" 2>&1 &
pid_sv=$!
status=0
wait "$pid_fre" || status=$?
wait "$pid_sv" || status=$?
tail -n 1 "$OUT/logs/search_fre.log" "$OUT/logs/search_supervision.log"
exit "$status"

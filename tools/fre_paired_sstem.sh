#!/usr/bin/env bash
# Paired-seed test of FRE on ssTEM with the CPU schedule (projects/fre_unet/README.md):
# baseline (sstem_cpu) and FRE (sstem_cpu_fre) for seeds 0..4. The two runs of a seed train side
# by side with one thread each (on a shared 2-core machine two threads per run waste their time
# waiting for each other); then the test-split evaluation of every run, the paired comparison
# (compare.md / compare.json) and the deep-vs-skip feature magnitudes (Figs. 2 and 9).
#
#   tools/fre_paired_sstem.sh [OUT] [DATA]
#       OUT   default runs/sstem_cpu
#       DATA  default $ENSEMBLAB_DATA/em/drosophila_sstem/stack1
#   SEEDS="0 1" CONFIG_A=isbi2012_cpu CONFIG_B=isbi2012_cpu_fre tools/fre_paired_sstem.sh OUT DIR
#
# About 18 CPU-minutes per run (0.76 s per bf16 step, 1200 steps, plus validation), so about
# 18 minutes per seed pair on two idle cores and 1.5 hours for the five pairs; under a load of
# ~9 on the 2 cores, as measured, about 2.5 times longer. Running it again resumes: a finished
# run is left as it is, a killed one continues from its last epoch (RUN/checkpoints/last.ckpt).
set -euo pipefail

OUT=${1:-runs/sstem_cpu}
DATA=${2:-${ENSEMBLAB_DATA:-data}/em/drosophila_sstem/stack1}
SEEDS=${SEEDS:-0 1 2 3 4}
CONFIG_A=${CONFIG_A:-sstem_cpu}
CONFIG_B=${CONFIG_B:-sstem_cpu_fre}
export OMP_NUM_THREADS=1
mkdir -p "$OUT/logs"

train() {  # train CONFIG VARIANT SEED: one run, resumed when its folder exists
    local run="$OUT/$2/seed$3" resume=()
    [ -f "$run/config.yaml" ] && resume=(--resume)
    ensemblab fre_unet train --config "$1" --data "$DATA" --out "$run" --device cpu \
        "${resume[@]}" seed="$3" > "$OUT/logs/$2_seed$3.log" 2>&1
}

for seed in $SEEDS; do
    start=$(date +%s)
    train "$CONFIG_A" baseline "$seed" & pid_a=$!
    train "$CONFIG_B" fre "$seed" & pid_b=$!
    status=0
    wait "$pid_a" || status=$?
    wait "$pid_b" || status=$?
    [ "$status" -eq 0 ] || { echo "seed $seed failed (exit $status): see $OUT/logs"; exit 1; }
    echo "seed $seed: baseline and FRE trained in $(( $(date +%s) - start )) s"
done

for variant in baseline fre; do
    ensemblab fre_unet evaluate --run "$OUT/$variant" --data "$DATA" --device cpu
done
ensemblab fre_unet compare --runs-a "$OUT/baseline" --runs-b "$OUT/fre" --out "$OUT" \
    --data "$DATA" --device cpu
ensemblab fre_unet table "$OUT/baseline" "$OUT/fre" --out "$OUT/table.md"
ensemblab fre_unet magnitudes "$OUT/baseline" "$OUT/fre" --out "$OUT/feature_magnitude.png"

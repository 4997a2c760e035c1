#!/usr/bin/env bash
# The usiigaci ensemble table: `usiigaci_ensemble` at seeds 0, 1, 2 with rotating folds. The 35
# labelled images form five folds (fold k: sets k, k+5, ..., k+30). Seed s validates on fold
# s (fold 5 for seed 0: the configs' own split) and holds out fold s+1 from training,
# validation and fitting; its five members train on the other three folds (21 images), two
# single-thread members at a time, then it fits and scores the three set-ups. Seeds 0-4 would
# validate and hold out every image once; OUT/seeds.md holds mean ± std over the seeds run.
# A finished member is never retrained, so running this again resumes.
# About 40 minutes per seed on two idle cores.
#
#   tools/usiigaci_seeds.sh [OUT] [DATA] [SEEDS]
#   (defaults: runs/usiigaci, the shared Usiigaci data, "0 1 2")
#
# FIXED_VALIDATION=1 validates every seed on fold 5 (sets 5, 10, ..., 35) and holds out
# fold s+1: the protocol of the fixed-fold table in results/usiigaci_seeds.md.
set -euo pipefail

OUT=${1:-runs/usiigaci}
DATA=${2:-${ENSEMBLAB_DATA:-data}/cells/usiigaci}
SEEDS=${3:-0 1 2}
mkdir -p "$OUT"

fold() { seq -s, -f "set%g" "$1" 5 35; }

dirs=()
for seed in $SEEDS; do
    val=$(( (seed + 4) % 5 + 1 ))
    held=$(( seed % 5 + 1 ))
    overrides=("data.split.test_ids=[$(fold "$held")]")
    if [[ "${FIXED_VALIDATION:-0}" == 1 ]]; then
        val=5
        name="fixed_seed$seed"
    else
        name="ensemble_seed$seed"
    fi
    if [[ "$val" != 5 ]]; then  # fold 5 is the configs' own validation split
        overrides=("data.split.val_ids=[$(fold "$val")]" "${overrides[@]}")
    fi
    ensemblab sartorius_cells ensemble --manifest usiigaci_ensemble --data "$DATA" \
        --out "$OUT/$name" --jobs 2 --seed "$seed" "${overrides[@]}" 2>&1 \
        | tee "$OUT/$name.log"
    dirs+=("$OUT/$name")
done
ensemblab sartorius_cells seeds --ensembles "${dirs[@]}" --out "$OUT"

#!/usr/bin/env bash
# The usiigaci ensemble table: `usiigaci_ensemble` at seeds 0, 1, 2, each seed holding its own
# fold of 7 images out of training, validation and fitting (seed 0: sets 1, 6, ..., 31; seed 1:
# sets 2, 7, ..., 32; seed 2: sets 3, 8, ..., 33), so 21 images are scored held out once each.
# Every seed trains its five members on the other 21 images (validation: sets 5, 10, ..., 35),
# two single-thread members at a time, then fits and scores the three set-ups; OUT/seeds.md
# holds mean ± std. A finished member is never retrained, so running this again resumes.
# About 40 minutes per seed on two idle cores.
#
#   tools/usiigaci_seeds.sh [OUT] [DATA]   (defaults: runs/usiigaci, the shared Usiigaci data)
set -euo pipefail

OUT=${1:-runs/usiigaci}
DATA=${2:-${ENSEMBLAB_DATA:-data}/cells/usiigaci}
mkdir -p "$OUT"

for seed in 0 1 2; do
    fold=$(seq -s, -f "set%g" $((seed + 1)) 5 35)
    ensemblab sartorius_cells ensemble --manifest usiigaci_ensemble --data "$DATA" \
        --out "$OUT/ensemble_seed$seed" --jobs 2 --seed "$seed" \
        "data.split.test_ids=[$fold]" 2>&1 | tee "$OUT/ensemble_seed$seed.log"
done
ensemblab sartorius_cells seeds --ensembles "$OUT"/ensemble_seed{0,1,2} --out "$OUT"

#!/usr/bin/env bash
# The commands behind RESULTS.md. Run from the repository root on a GPU machine:
#   DATA=path/to/fssod bash experiments.sh GROUP
# GROUP: main (SoccerSAM, seeds $SEEDS, default 0 1 2), supervised, ablations, oracle, lr-paper.
# Every run writes RUNS/NAME/{checkpoint.pt,results.json,classwise_iou.png,qualitative.png,tables.md}.
set -euo pipefail
DATA=${DATA:-../shared/fssod}
RUNS=${RUNS:-runs}
EPOCHS=${EPOCHS:-40}
LR=${LR:-1e-3}
mkdir -p "$RUNS"
run() {
  local name=$1; shift
  python3 train.py --data "$DATA" --epochs "$EPOCHS" --lr "$LR" --lr-sbm "$LR" --workers 8 \
    --out "$RUNS/$name" "$@" 2>"$RUNS/$name.err" | tee "$RUNS/$name.log"
}
case "${1:?name a group: main, supervised, ablations, oracle, lr-paper}" in
  main)       for seed in ${SEEDS:-0 1 2}; do run "soccersam-seed$seed" --seed "$seed"; done ;;
  supervised) run supervised --supervised ;;
  ablations)  run wo-sbm --lambda-sbm 0; run wo-bd --lambda-bd 0; run wo-aug --lambda-aug 0 ;;
  oracle)     run oracle --source oracle ;;
  lr-paper)   LR=1e-5 run soccersam-lr1e-5 ;;
  *) echo "unknown group $1: use main, supervised, ablations, oracle or lr-paper" >&2; exit 2 ;;
esac

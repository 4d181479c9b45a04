#!/usr/bin/env bash
# The commands behind RESULTS.md. Run from the repository root on a GPU machine:
#   DATA=path/to/fssod bash experiments.sh GROUP [GROUP ...]
# GROUPs: main (SoccerSAM, seeds $SEEDS, default 0 1 2), seedN (one seed), k40 (40 clusters, majority
# naming), supervised, ablations (or wo-sbm, wo-bd, wo-aug), oracle, random-init (SBM prototypes
# not started from k-means), fixed-prototypes (no SBM objective: the k-means prototypes stay as they start),
# e100 (100 epochs), marginal-start (Sinkhorn balances clusters to the k-means start's masses, not equally),
# lr-paper (the paper's lr 1e-5), prior (labelled SBM prior; needs supervised), lraspp (supervised
# LRASPP-MobileNetV3 and, for a fair comparison, the supervised student with a random-init encoder).
# Every run writes RUNS/NAME/{checkpoint.pt,results.json,classwise_iou.png,qualitative.png,tables.md};
# a run folder that already has a checkpoint is resumed, one with results.json is skipped.
set -euo pipefail
DATA=${DATA:-../shared/fssod}
RUNS=${RUNS:-runs}
EPOCHS=${EPOCHS:-30}
LR=${LR:-1e-3}
WORKERS=${WORKERS:-8}
mkdir -p "$RUNS"
run() {
  local name=$1; shift
  [[ -f "$RUNS/$name/results.json" ]] && return
  local resume=(); [[ -f "$RUNS/$name/checkpoint.pt" ]] && resume=(--resume)
  python3 train.py --data "$DATA" --epochs "$EPOCHS" --lr "$LR" --lr-sbm "$LR" --workers "$WORKERS" \
    --out "$RUNS/$name" "${resume[@]}" "$@" 2>>"$RUNS/$name.err" | tee -a "$RUNS/$name.log"
}
for group in "$@"; do
  case "$group" in
    main)        for seed in ${SEEDS:-0 1 2}; do run "soccersam-seed$seed" --seed "$seed"; done ;;
    seed[0-9]*)  run "soccersam-$group" --seed "${group#seed}" ;;
    k40)         run soccersam-k40 --clusters 40 ;;
    supervised)  run supervised --supervised ;;
    ablations)   run wo-sbm --lambda-sbm 0; run wo-bd --lambda-bd 0; run wo-aug --lambda-aug 0 ;;
    wo-sbm)      run wo-sbm --lambda-sbm 0 ;;
    wo-bd)       run wo-bd --lambda-bd 0 ;;
    wo-aug)      run wo-aug --lambda-aug 0 ;;
    oracle)      run oracle --source oracle ;;
    random-init) run random-init --sbm-init random ;;
    fixed-prototypes) run fixed-prototypes --lambda-self 0 ;;
    e100)        run soccersam-e100 --epochs 100 ;;
    marginal-start) run marginal-start --sbm-marginal start ;;
    lraspp)      run supervised-lraspp --supervised --student lraspp
                 run supervised-random-encoder --supervised --encoder random ;;
    lr-paper)    LR=1e-5 run soccersam-lr1e-5 ;;
    prior)       run prior --sbm-prior "$RUNS/supervised/checkpoint.pt" ;;
    *) echo "unknown group $group: see the header of experiments.sh" >&2; exit 2 ;;
  esac
done

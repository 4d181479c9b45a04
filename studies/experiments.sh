#!/usr/bin/env bash
# The runs behind RESULTS.md, one process per (row, seed, fold), PARALLEL of them side by side on
# one GPU. From the repository root:
#   DATA=path/to/fssod bash studies/experiments.sh ROW[:SEED,SEED...] ...   (seeds default to $SEEDS)
# Each run is train.py --fold F into RUNS/ROW-seedS/fold-F; the fold that finishes last pools its run
# into RUNS/ROW-seedS/results.json (5-fold cross-validation). A fold with results.json is skipped, one
# that has started is resumed. `python3 studies/summarize.py RUNS/*/results.json` tabulates the rows.
# Build the mask caches first (sam_teacher.py --source S --out cache/fssod-S-416x608), so that the
# side-by-side processes do not all build them.
# On one GPU, start CUDA's multi-process service first (nvidia-cuda-mps-control -d), so that the
# processes' kernels share the GPU instead of taking turns (RESULTS.md, Speed). Each process holds
# about 6.6 GB of GPU memory at 416 x 608 with 11 clusters and 10.4 GB with 40: on a 140 GB H200,
# PARALLEL 16 fits 11-cluster rows and 12 fits 40-cluster rows.
set -euo pipefail
DATA=${DATA:-../shared/fssod}
RUNS=${RUNS:-runs}
SEEDS=${SEEDS:-0 1 2}
FOLDS=${FOLDS:-0 1 2 3 4}
PARALLEL=${PARALLEL:-8}
NPROC=${NPROC:-1}  # processes per run; 2 runs each as torchrun --nproc_per_node=2 (the same global batch)
EXTRA=${EXTRA:-}  # flags added to every run, e.g. EXTRA="--size 64 96 --epochs 1" for a smoke test
declare -A ROWS=(
  [soccersam]=""                                    # the headline: train.py's defaults (two AdamW)
  [sbm-fixed]="--sbm-lr 0"                          # the SBM fixed at its k-means start, one AdamW
  [wo-sbm]="--lambda-sbm 0"                         # Table 2 ablations
  [wo-bd]="--lambda-bd 0"
  [wo-aug]="--lambda-aug 0"
  [supervised]="--supervised"                       # Table 1's supervised MobileNet-UNet, 100 epochs
  [oracle]="--source oracle"                        # ANALYSIS: ground-truth regions as the masks
  [k40]="--clusters 40"                             # the many-clusters protocol
  [k40-long]="--clusters 40 --epochs 150 --sbm-lr 0"  # k40's schedule x 5 (k40 ran with the SBM fixed)
  [superpixel]="--source superpixel"                # the previous sessions' stand-in for SAM
  [superpixel-k40]="--source superpixel --clusters 40"
  [oracle-k40]="--source oracle --clusters 40"
  [single-split]="--folds 1"                        # split.json's frames 1-10 as the test split
  [single-split-superpixel]="--folds 1 --source superpixel"  # with evaluate.py --black-is-class: the lean check
)
mkdir -p "$RUNS"
jobs=()
for token in "$@"; do  # ROW, or ROW:S,S,... for other seeds than $SEEDS
  row=${token%%:*} seeds=$SEEDS; [[ $token == *:* ]] && seeds=${token#*:} && seeds=${seeds//,/ }
  [[ -v ROWS[$row] ]] || { echo "unknown row $row; known: ${!ROWS[*]}" >&2; exit 1; }
  folds=$FOLDS; [[ ${ROWS[$row]} == *"--folds 1"* ]] && folds=all
  for seed in $seeds; do for fold in $folds; do jobs+=("$row $seed $fold ${ROWS[$row]} $EXTRA"); done; done
done
run_one() {  # ROW SEED FOLD FLAGS...
  local row=$1 seed=$2 fold=$3 out="$RUNS/$1-seed$2"; shift 3
  local dir=$out which=()
  [[ $fold != all ]] && dir="$out/fold-$fold" && which=(--fold "$fold")
  [[ -f "$dir/results.json" ]] && return 0
  local resume=(); [[ -f "$dir/settings.json" ]] && resume=(--resume)
  local launch=(python3)
  ((NPROC > 1)) && launch=(python3 -m torch.distributed.run --standalone --nproc_per_node="$NPROC")
  "${launch[@]}" train.py --data "$DATA" --out "$out" --seed "$seed" "${which[@]}" "${resume[@]}" "$@" \
    >"$RUNS/$row-seed$seed-fold$fold.log" 2>&1 || echo "FAILED: $row seed $seed fold $fold" >&2
}
export -f run_one
export DATA RUNS NPROC
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}  # many processes share the CPU cores
printf '%s\n' "${jobs[@]}" | sed 's/ *$//' | xargs -P "$PARALLEL" -L 1 bash -c 'run_one "$@"' _

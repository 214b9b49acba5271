#!/usr/bin/env bash
# The physics term on the embedded default (2-core CPU), each comparison in one run:
#  1. small_unet with and without physics.weight at equal wall-clock (train.max_minutes each,
#     same fold 0): best validation MAE (Kaggle metric) and epochs done;
#  2. transductive fine-tuning: the main job's model (runs/small_unet/fold0) trained further on the
#     test set's seismic alone (data.unlabeled, physics term only: lr small, labeled batches kept
#     with physics off so the supervised signal stays) vs the same fine-tuning without the test
#     seismic; test MAE against the hidden labels before/after.
#   bash benchmarks/fwi_physics_term.sh [MINUTES] [FINETUNE_MINUTES]     # defaults 4 and 3
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MINUTES="${1:-4}"
FT_MINUTES="${2:-3}"
PY=.venv/bin/python
KK=".venv/bin/kagglekit"
COMP=data/synthetic
OUT=runs/bench_physics
rm -rf "$OUT" runs/bench_plain runs/bench_physics_term runs/bench_ft_plain runs/bench_ft_unlabeled
mkdir -p "$OUT"
train() {  # NAME OVERRIDES...
  local name="$1"; shift
  $KK train configs/fwi/small_unet.yaml --fold 0 "name=$name" "train.max_minutes=$MINUTES" "$@" 2>&1 \
    | tr '\r' '\n' | grep -E "^\[kagglekit\] (epoch|best|time)" || true
}
train bench_plain
train bench_physics_term physics.weight=1000 physics.samples=2 physics.warmup=0.2

# transductive: start from the main job, 3 minutes more each, with and without the test seismic
MAIN=runs/small_unet/fold0
[ -f "$MAIN/best.pt" ] || { echo "run bash scripts/train_fold.sh first ($MAIN/best.pt missing)"; exit 2; }
FT=("model.pretrained=$MAIN/best.pt" "train.lr=1e-4" "train.warmup_epochs=0")
MINUTES=$FT_MINUTES train bench_ft_plain "${FT[@]}"
MINUTES=$FT_MINUTES train bench_ft_unlabeled "${FT[@]}" "data.unlabeled=$COMP/test" physics.weight=1000 \
  physics.samples=2 physics.unlabeled_every=2 physics.warmup=0
for RUN in small_unet bench_ft_plain bench_ft_unlabeled; do
  $KK fwi predict "runs/$RUN/fold0" --test-dir "$COMP/test" --out "$OUT/$RUN" --device cpu > /dev/null
  NAME=$(basename "$(ls "$OUT/$RUN"/*.npy | grep -v __ | head -1)" .npy)
  $KK fwi write-csv "$OUT/$RUN/$NAME.npy" --sample-submission "$COMP/sample_submission.csv" --out "$OUT" --name "$RUN" \
    > /dev/null
  echo "[fwi_physics_term] test MAE of $RUN:"
  $KK fwi score "$OUT/$RUN.csv" --labels "$COMP/test_labels.npy" --label-ids "$COMP/test_ids.csv" | tail -1
done
$PY - runs/bench_plain runs/bench_physics_term <<'PY'
import sys

from kagglekit.engine.runs import RunFolder

def best(run):
    rows = RunFolder(f"{run}/fold0").read_metrics()
    b = min(rows, key=lambda r: r["valid/mae"])
    return b["valid/mae"], rows[-1]["epochs_done"], rows[-1].get("train_physics")

(plain, ep_plain, _), (phys, ep_phys, misfit) = best(sys.argv[1]), best(sys.argv[2])
print("| small_unet, equal wall-clock | best valid MAE | epochs done | train_physics (last epoch) |")
print("|---|---:|---:|---:|")
print(f"| supervised only | {plain:.1f} | {ep_plain:.2f} | |")
print(f"| + physics term (weight 1000, 2 samples/batch) | {phys:.1f} | {ep_phys:.2f} | {misfit:.4f} |")
print(f"ratio physics / plain: {phys / plain:.2f}")
PY

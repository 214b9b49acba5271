#!/usr/bin/env bash
# Build the embedded default: a synthetic competition simulated with deepwave in the Kaggle layout
# (data/synthetic: train_samples/, test/, sample_submission.csv, hidden labels), converted to
# fp16 memmaps in data/synthetic/converted. A no-op when it is already there.
#   bash scripts/make_synthetic.sh                      # 2 x 50 samples per family + 100 test, ~1-2 minutes
#   SYN_PER_FILE=150 SYN_TEST=10 OUT=data/synth3k bash scripts/make_synthetic.sh   # a larger one
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
OUT="${OUT:-data/synthetic}"
if [ -f "$OUT/converted/manifest.json" ]; then
  exit 0
fi
echo "[make_synthetic] simulating the synthetic competition in $OUT"
# one single-threaded simulation worker per core, or one per GPU (kagglekit.parallel; SIM_WORKERS=N overrides)
.venv/bin/kagglekit fwi simulate "$OUT" --per-file "${SYN_PER_FILE:-50}" --n-test "${SYN_TEST:-100}" \
  ${SIM_WORKERS:+--workers "$SIM_WORKERS"}
.venv/bin/kagglekit fwi convert "$OUT/train_samples" "$OUT/converted"

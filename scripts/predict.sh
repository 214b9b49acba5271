#!/usr/bin/env bash
# Predict a test folder with every fold of one or more configs (best EMA weights, flip TTA).
#   bash scripts/predict.sh                          # small_unet on the synthetic test set
#   TEST=/kaggle/input/waveform-inversion/test OUT=predictions bash scripts/predict.sh hgnet_b2 caformer_b36
# Writes OUT/<config>__<fold>.npy, OUT/<config>.npy (fold mean, float16 (N, 70, 70)), OUT/ids.txt and
# OUT/runs.json (the run folders of each file). DEVICE=cpu|cuda|auto (default auto).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
TEST="${TEST:-data/synthetic/test}"
OUT="${OUT:-predictions}"
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(small_unet)
for CFG in "${CONFIGS[@]}"; do
  RUNS=()
  for RUN in runs/"$CFG"/*/; do
    [ -f "$RUN/best.pt" ] && RUNS+=("${RUN%/}")
  done
  if [ ${#RUNS[@]} -eq 0 ]; then
    echo "[predict] no trained folds in runs/$CFG (train with: bash scripts/train_fold.sh configs/fwi/$CFG.yaml 0)" >&2
    exit 2
  fi
  "$ROOT/.venv/bin/kagglekit" fwi predict "${RUNS[@]}" --test-dir "$TEST" --out "$OUT" --device "${DEVICE:-auto}"
done

#!/usr/bin/env bash
# Train -> CV -> ensemble -> CSV (written locally; `kagglekit kaggle submit` uploads it). With no
# arguments: the embedded synthetic competition end to end on CPU (trains small_unet fold 0 first if
# it has no run yet), then scores the CSV against the hidden test labels.
#   bash scripts/make_submission.sh
#   TEST=/kaggle/input/waveform-inversion/test SAMPLE=/kaggle/input/waveform-inversion/sample_submission.csv \
#     bash scripts/make_submission.sh hgnet_b2 caformer_b36      # OOF-weighted blend of two configs
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
KK="$ROOT/.venv/bin/kagglekit"
TEST="${TEST:-data/synthetic/test}"
SAMPLE="${SAMPLE:-data/synthetic/sample_submission.csv}"
OUT="${OUT:-predictions}"
CONFIGS=("$@")
if [ ${#CONFIGS[@]} -eq 0 ]; then
  CONFIGS=(small_unet)
  ls runs/small_unet/*/best.pt >/dev/null 2>&1 || bash scripts/train_fold.sh configs/fwi/small_unet.yaml 0
fi
bash scripts/predict.sh "${CONFIGS[@]}"
CV_RUNS=()
for CFG in "${CONFIGS[@]}"; do CV_RUNS+=("runs/$CFG"); done
"$KK" fwi cv "${CV_RUNS[@]}" --out "$OUT/cv"
if [ ${#CONFIGS[@]} -gt 1 ]; then
  TESTS=()
  for CFG in "${CONFIGS[@]}"; do TESTS+=("$OUT/$CFG.npy"); done
  "$KK" fwi ensemble "${CV_RUNS[@]}" --preds "${TESTS[@]}" --method weights --out "$OUT/ensemble"
  PRED="$OUT/ensemble/ensemble.npy"; NAME="ensemble_$(IFS=_; echo "${CONFIGS[*]}")"
else
  PRED="$OUT/${CONFIGS[0]}.npy"; NAME="${CONFIGS[0]}"
fi
# ids.txt and runs.json beside PRED; writes submissions/NAME.csv and NAME.csv.sources.json (its run folders)
"$KK" fwi write-csv "$PRED" --sample-submission "$SAMPLE" --out submissions --name "$NAME"
LABELS="$(dirname "$TEST")/test_labels.npy"
if [ -f "$LABELS" ]; then
  "$KK" fwi score "submissions/$NAME.csv" --labels "$LABELS" --label-ids "$(dirname "$TEST")/test_ids.csv"
fi

#!/usr/bin/env bash
# Accuracy with more data on the embedded default: InversionNet (width 8, time-gain input, its
# better recipe in fwi_accuracy.sh) vs the small UNet, both trained on the converted folder plus
# an `fwi augment` folder (AUG_COUNT rows: blend, affine, flip6, mixup, family) plus on-the-fly
# simulated samples (data.simulate.ratio=SIM_RATIO, family + blend maps), fold 0, at two CPU
# budgets (train.max_minutes 5 and 20; the schedule anneals to the budget). Then one pseudo-label
# round from the 20-minute UNet (3 minutes of fine-tuning, with a no-pseudo control).
# Writes benchmarks/results/fwi_data_accuracy.{md,png}: the table and the curve (valid MAE vs minutes).
#   bash benchmarks/fwi_data_accuracy.sh                # ~65 minutes on the 2-core CPU, run alone
#   BUDGETS="5" bash benchmarks/fwi_data_accuracy.sh     # one budget
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/make_synthetic.sh
PY=.venv/bin/python
AUG_COUNT="${AUG_COUNT:-8000}"
SIM_RATIO="${SIM_RATIO:-0.1}"
BUDGETS="${BUDGETS:-5 20}"
AUG=data/synthetic/augmented
start=$(date +%s)
$PY -m kagglekit.cli fwi augment data/synthetic/converted --out "$AUG" --count "$AUG_COUNT" 2>&1 | tr '\r' '\n' | tail -n 2
echo "[fwi_data_accuracy] augment ready in $(( $(date +%s) - start )) s"
COMMON=("data.roots=[data/synthetic/converted,$AUG]" "data.simulate.ratio=$SIM_RATIO" "train.epochs=400")
RUNS=()
for BUDGET in $BUDGETS; do
  for MODEL in inversionnet unet; do
    NAME="data_${MODEL}_${BUDGET}m"
    if [ "$MODEL" = inversionnet ]; then
      CFG=configs/fwi/small_inversionnet.yaml; EXTRA=(model.kwargs.input_transform=gain_log1p)
    else
      CFG=configs/fwi/small_unet.yaml; EXTRA=()
    fi
    rm -rf "runs/$NAME/fold0"
    start=$(date +%s)
    bash scripts/train_fold.sh "$CFG" 0 "name=$NAME" "${COMMON[@]}" "${EXTRA[@]}" "train.max_minutes=$BUDGET" 2>&1 \
      | tr '\r' '\n' | grep -v -E "it/s|s/it|^\s*$" | grep -E "epoch|budget|\*\*all" || true
    echo "[fwi_data_accuracy] $NAME wall time: $(( $(date +%s) - start )) s"
    RUNS+=("runs/$NAME")
  done
done
ROUND=runs/pseudo/data_unet_20m_fold0
if [ -d runs/data_unet_20m/fold0 ]; then
  rm -rf "$ROUND" runs/data_unet_20m_pl1 runs/data_unet_20m_pl1_control
  OUT="$ROUND" bash scripts/pseudo_label_round.sh runs/data_unet_20m/fold0 data/synthetic/test --minutes 3 --control 2>&1 \
    | tr '\r' '\n' | grep -E "^\|" || true
fi
mkdir -p benchmarks/results
$PY benchmarks/fwi_data_accuracy_report.py "${RUNS[@]}" --round "$ROUND" --out benchmarks/results/fwi_data_accuracy

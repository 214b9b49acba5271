#!/usr/bin/env bash
# Accuracy on the embedded default: InversionNet (its log1p recipe, and with our time-gain input)
# vs the small UNet, same data, same fold, 20 epochs each (about 5 minutes of training on the
# 2-core CPU; each capped by train.max_minutes). Prints the per-family MAE table of each run's
# best (EMA) epoch, then one table side by side (Kaggle metric: MAE over the odd columns) with the
# ratio UNet / best InversionNet and the epochs each run completed.
#   bash benchmarks/fwi_accuracy.sh          # ~17 minutes
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS=(
  "small_inversionnet|configs/fwi/small_inversionnet.yaml|"
  "small_inversionnet_gain|configs/fwi/small_inversionnet.yaml|model.kwargs.input_transform=gain_log1p"
  "small_unet|configs/fwi/small_unet.yaml|"
)
for RUN in "${RUNS[@]}"; do
  IFS="|" read -r NAME CFG OVERRIDE <<< "$RUN"
  rm -rf "runs/$NAME/fold0"
  start=$(date +%s)
  # shellcheck disable=SC2086  # OVERRIDE is empty or one word
  bash scripts/train_fold.sh "$CFG" 0 "name=$NAME" $OVERRIDE 2>&1 | tr '\r' '\n' | grep -v -E "it/s|s/it|^\s*$"
  echo "[fwi_accuracy] $NAME wall time: $(( $(date +%s) - start )) s"
done
.venv/bin/python - runs/small_inversionnet runs/small_inversionnet_gain runs/small_unet <<'PY'
import sys

from kagglekit.engine.runs import RunFolder

def best(run):
    rows = RunFolder(f"{run}/fold0").read_metrics()
    return {**min(rows, key=lambda r: r["valid/mae"]), "epochs_done": rows[-1]["epochs_done"]}

inv, inv_gain, unet = (best(r) for r in sys.argv[1:])
baseline = inv if inv["valid/mae"] <= inv_gain["valid/mae"] else inv_gain
print("| family | InversionNet log1p | InversionNet gain | UNet | UNet / best InversionNet |")
print("|---|---:|---:|---:|---:|")
for key in [k for k in unet if k.startswith("valid/mae/")] + ["valid/mae"]:
    name = key.removeprefix("valid/mae/") if key != "valid/mae" else "**all**"
    print(f"| {name} | {inv[key]:.1f} | {inv_gain[key]:.1f} | {unet[key]:.1f} | {unet[key] / baseline[key]:.2f} |")
print(f"| epochs done (best epoch) | {inv['epochs_done']:.2f} ({inv['epoch']}) | {inv_gain['epochs_done']:.2f} ({inv_gain['epoch']}) "
      f"| {unet['epochs_done']:.2f} ({unet['epoch']}) | |")
PY

#!/usr/bin/env bash
# Ablation of the UNet's optional input channels on the embedded default (fold 0, the
# small_unet recipe, 20 epochs each, ~5-6 minutes per run on the 2-core CPU). Prints one line per
# variant: wall time, the best epoch (the one best.pt holds) with its train loss and validation MAE
# (Kaggle metric, EMA weights), and the epochs done.
#   bash benchmarks/fwi_unet_inputs.sh                 # all variants (~70 minutes)
#   bash benchmarks/fwi_unet_inputs.sh coord midpoint  # some of them
# Variants: base (small_unet.yaml as it is: time-gain input), seed1 (base with another seed: the
# noise level), log1p and log1p_seed1 (the plain log1p input the gain replaced), and, on the log1p
# input as first measured: coord, coord_seed1, midpoint, migration (with coord), batch8 (batch 8,
# lr 2e-3); gain_migration and gain_stem add the migration channels / a 16-channel learned time
# stem to the time-gain input.
# EXTRA adds overrides to every run, e.g.
#   EXTRA="train.epochs=1" bash benchmarks/fwi_unet_inputs.sh coord   # a 1-epoch smoke run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/make_synthetic.sh
declare -A OVERRIDES=(
  [base]=""
  [coord]="model.kwargs.input_transform=log1p model.kwargs.coord_channels=true"
  [midpoint]="model.kwargs.input_transform=log1p model.kwargs.midpoint_channels=true"
  [migration]="model.kwargs.input_transform=log1p model.kwargs.coord_channels=true model.kwargs.migration_velocities=[2000,3000,4000]"
  [seed1]="train.seed=1"
  [coord_seed1]="model.kwargs.input_transform=log1p model.kwargs.coord_channels=true train.seed=1"
  [batch8]="model.kwargs.input_transform=log1p train.batch_size=8 train.lr=2e-3"
  [log1p]="model.kwargs.input_transform=log1p"
  [log1p_seed1]="model.kwargs.input_transform=log1p train.seed=1"
  [gain_migration]="model.kwargs.migration_velocities=[2000,3000,4000]"
  [gain_stem]="model.kwargs.time_stem=16 train.max_minutes=12"
)
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(log1p log1p_seed1 base seed1 coord coord_seed1 midpoint migration gain_migration batch8 gain_stem)
for V in "${VARIANTS[@]}"; do
  [ -n "${OVERRIDES[$V]+set}" ] || { echo "unknown variant '$V'; valid: ${!OVERRIDES[*]}" >&2; exit 2; }
  NAME="unet_inputs_$V"
  rm -rf "runs/$NAME"
  start=$(date +%s)
  # shellcheck disable=SC2086  # the overrides are word lists
  .venv/bin/kagglekit train configs/fwi/small_unet.yaml --fold 0 "name=$NAME" ${OVERRIDES[$V]} ${EXTRA:-} > "runs/$NAME.log" 2>&1
  .venv/bin/python - "runs/$NAME/fold0" "$V" "$(( $(date +%s) - start ))" <<'PY'
import sys
from kagglekit.engine.runs import RunFolder
records = RunFolder(sys.argv[1]).read_metrics()
best = min(records, key=lambda r: r["valid/mae"])
print(f"[unet_inputs] {sys.argv[2]:10s} {sys.argv[3]:>4s} s  best epoch {best['epoch']} of {records[-1]['epochs_done']:.2f} done  "
      f"train {best['train_loss']:.1f}  valid MAE {best['valid/mae']:.1f}")
PY
done

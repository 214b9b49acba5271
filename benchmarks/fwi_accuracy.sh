#!/usr/bin/env bash
# Accuracy on the embedded default: InversionNet vs the small UNet, same data, same fold,
# epochs chosen so each trains for about 5 minutes on the 2-core CPU (both capped by
# train.max_minutes). Prints each run's per-family MAE table and wall time.
#   bash benchmarks/fwi_accuracy.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
for CFG in small_inversionnet small_unet; do
  rm -rf "runs/$CFG/fold0"
  start=$(date +%s)
  bash scripts/train_fold.sh "configs/fwi/$CFG.yaml" 0 2>&1 | tr '\r' '\n' | grep -v -E "it/s|s/it|^\s*$"
  echo "[fwi_accuracy] $CFG wall time: $(( $(date +%s) - start )) s"
done

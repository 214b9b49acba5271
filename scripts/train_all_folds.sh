#!/usr/bin/env bash
# Train every fold of a config (folds read from the converted folder's index.csv).
#   bash scripts/train_all_folds.sh configs/fwi/tiny_unet.yaml [overrides...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
CONFIG="${1:?usage: train_all_folds.sh CONFIG [overrides...]}"
shift
PY="$ROOT/.venv/bin/python"
DATA_ROOT="$("$PY" -c 'import sys; from kagglekit.config import load_config; print(load_config(sys.argv[1], sys.argv[2:]).data.root)' "$CONFIG" "$@")"
if [ -f "$DATA_ROOT/index.csv" ]; then
  FOLDS="$("$PY" -c 'import sys, pandas as pd; f = pd.read_csv(sys.argv[1])["fold"]; print(" ".join(map(str, sorted(set(f[f >= 0])))))' "$DATA_ROOT/index.csv")"
else
  FOLDS="0 1 2 3 4"  # train_fold.sh builds the default data on the first fold
fi
for FOLD in $FOLDS; do
  bash "$ROOT/scripts/train_fold.sh" "$CONFIG" "$FOLD" "$@"
done

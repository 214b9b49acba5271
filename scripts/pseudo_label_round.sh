#!/usr/bin/env bash
# One pseudo-label round: predict TEST_DIR with RUN, simulate the predicted maps, fine-tune RUN on
# its training folders + the (simulated seismic, predicted map) pairs, predict again.
#   bash scripts/pseudo_label_round.sh runs/small_unet/fold0 data/synthetic/test
#   bash scripts/pseudo_label_round.sh runs/small_unet_pl1/fold0 data/synthetic/test --minutes 5 --refine-minutes 2
# The round folder is runs/pseudo/<run name>_<fold> unless OUT is set. When TEST_DIR's parent
# holds test_labels.npy + test_ids.csv (the synthetic competition), the test MAE is reported too.
# Rerun the same command to resume a round that was interrupted.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
RUN="${1:?usage: pseudo_label_round.sh RUN TEST_DIR [extra fwi pseudo-label options]}"
TEST_DIR="${2:?usage: pseudo_label_round.sh RUN TEST_DIR [extra fwi pseudo-label options]}"
shift 2
RUN="${RUN%/}"
OUT="${OUT:-runs/pseudo/$(basename "$(dirname "$RUN")")_$(basename "$RUN")}"
LABELS=()
PARENT="$(dirname "${TEST_DIR%/}")"
if [ -f "$PARENT/test_labels.npy" ] && [ -f "$PARENT/test_ids.csv" ]; then
  LABELS=(--labels "$PARENT/test_labels.npy" --label-ids "$PARENT/test_ids.csv")
fi
exec "$ROOT/.venv/bin/python" -m kagglekit.cli fwi pseudo-label "$RUN" --test-dir "$TEST_DIR" --out "$OUT" "${LABELS[@]}" "$@"

#!/usr/bin/env bash
# From trained runs to a scored submission of the code competition `waveform-inversion`: stage the
# code and the weights, publish both (create or new version, wait until Kaggle has processed them),
# render and push the offline submission kernel, wait for its run, fetch its output, submit it.
#   bash scripts/kaggle_submit.sh runs/hgnet_b2                      # every fold of one config
#   ENSEMBLE=predictions/ensemble/ensemble.json bash scripts/kaggle_submit.sh runs/hgnet_b2 runs/caformer_b36
# Credentials come only from your environment (KAGGLE_USERNAME + KAGGLE_KEY, or KAGGLE_API_TOKEN)
# or ~/.kaggle/; nothing here writes them. Accept the competition's rules on its page first.
# Settings (environment): OWNER (default: the credentials' user), COMPETITION, STAGE (folder for
# the staged folders, kernel and output; default kaggle-stage), ENSEMBLE (ensemble.json of
# `fwi ensemble`), WEIGHTS_AS (dataset | model), REFINE_MINUTES (0 = off), SAMPLE (a local
# sample_submission.csv to validate the fetched output against), MESSAGE.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
KK="$ROOT/.venv/bin/kagglekit"
if [ $# -eq 0 ]; then
  echo "usage: bash scripts/kaggle_submit.sh RUN [RUN ...]   (run folders or config folders under runs/)" >&2
  exit 2
fi
step() { printf '\n[kaggle_submit] %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

OWNER="${OWNER:-$("$KK" kaggle whoami)}"
COMPETITION="${COMPETITION:-waveform-inversion}"
STAGE="${STAGE:-kaggle-stage}"
WEIGHTS_AS="${WEIGHTS_AS:-dataset}"
KERNEL="$OWNER/kagglekit-fwi-submission"
ENSEMBLE_ARGS=()
[ -n "${ENSEMBLE:-}" ] && ENSEMBLE_ARGS=(--ensemble "$ENSEMBLE")

step "1/8 stage the code: kagglekit's wheel and the wheels Kaggle's image lacks -> $STAGE/code"
run "$KK" kaggle stage-code "$STAGE/code" --owner "$OWNER"
step "2/8 stage the weights (best.pt + config.yaml per run) -> $STAGE/weights"
run "$KK" kaggle stage-weights "$@" --out "$STAGE/weights" --owner "$OWNER" "${ENSEMBLE_ARGS[@]}"
step "3/8 publish the code dataset $OWNER/kagglekit-code"
run "$KK" kaggle publish-code "$STAGE/code"
step "4/8 publish the weights as a $WEIGHTS_AS"
PUBLISHED="$(run "$KK" kaggle publish-weights "$STAGE/weights" --as "$WEIGHTS_AS" | tee /dev/stderr)"
if [ "$WEIGHTS_AS" = model ]; then
  WEIGHTS="$(sed -n 's/^model instance version: //p' <<<"$PUBLISHED")"
else
  WEIGHTS="$(sed -n 's/^dataset: //p' <<<"$PUBLISHED")"
fi
step "5/8 render the submission kernel (internet off, T4, sources $OWNER/kagglekit-code + $WEIGHTS) -> $STAGE/kernel"
run "$KK" kaggle render-kernel fwi-submission --out "$STAGE/kernel" --owner "$OWNER" --competition "$COMPETITION" \
  --weights "$WEIGHTS" --refine-minutes "${REFINE_MINUTES:-0}"
step "6/8 push it"
PUSHED="$(run "$KK" kaggle push "$STAGE/kernel" | tee /dev/stderr)"
VERSION="$(sed -n 's/^pushed .* version \([0-9][0-9]*\):.*/\1/p' <<<"$PUSHED")"
step "7/8 wait for $KERNEL version $VERSION to run, then fetch its output and log"
run "$KK" kaggle status "$KERNEL" --wait
run "$KK" kaggle output "$KERNEL" --out "$STAGE/output"
if [ -n "${SAMPLE:-}" ]; then
  run "$KK" fwi validate "$STAGE/output/submission.csv" --sample-submission "$SAMPLE"
fi
step "8/8 submit $KERNEL version $VERSION to $COMPETITION"
run "$KK" kaggle submit "$COMPETITION" --kernel "$KERNEL" --version "$VERSION" --output-file submission.csv \
  --message "${MESSAGE:-kagglekit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo local): $*}"
echo "[kaggle_submit] done: the score appears on https://www.kaggle.com/competitions/$COMPETITION/submissions"

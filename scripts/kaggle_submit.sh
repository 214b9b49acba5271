#!/usr/bin/env bash
# Submit to Kaggle and record the public score in the runs the submission came from.
#
# CSV route (the default; `waveform-inversion` takes CSV uploads): validate the CSV, upload it
# (kaggle competitions submit -c COMPETITION -f CSV -m MESSAGE), wait for the score and append it
# to the leaderboard.jsonl of the runs listed in CSV.sources.json (`fwi write-csv` writes it).
#   bash scripts/kaggle_submit.sh submissions/ensemble.csv
#
# Kernel route (ROUTE=kernel): inference on Kaggle's GPUs, or a code competition. Stage the code
# and the weights, publish both (create or new version, wait until processed), render and push the
# offline submission kernel, wait for its run and fetch its output. Then a CSV competition gets
# the fetched CSV through the CSV route; a code competition (CODE_COMPETITION=1) gets the kernel
# version (--kernel --kernel-version).
#   ROUTE=kernel bash scripts/kaggle_submit.sh runs/hgnet_b2                 # every fold of one config
#   ROUTE=kernel ENSEMBLE=predictions/ensemble/ensemble.json bash scripts/kaggle_submit.sh runs/hgnet_b2 runs/caformer_b36
#
# Credentials come only from your environment (KAGGLE_USERNAME + KAGGLE_KEY, or KAGGLE_API_TOKEN)
# or ~/.kaggle/; nothing here writes them. Accept the competition's rules on its page first.
# Settings (environment): COMPETITION (default waveform-inversion), SAMPLE (its sample_submission.csv,
# default data/waveform-inversion/sample_submission.csv), MESSAGE, NO_WAIT=1 (do not wait for the
# score); kernel route: OWNER (default: the credentials' user), STAGE (folder for the staged
# folders, kernel and output; default kaggle-stage), ENSEMBLE (ensemble.json of `fwi ensemble`),
# WEIGHTS_AS (dataset | model), REFINE_MINUTES (0 = off), CODE_COMPETITION (1: submit the kernel).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
KK="$ROOT/.venv/bin/kagglekit"
ROUTE="${ROUTE:-csv}"
if [ $# -eq 0 ] || { [ "$ROUTE" = csv ] && [ $# -ne 1 ]; }; then
  echo "usage: bash scripts/kaggle_submit.sh CSV                  (CSV route, the default)" >&2
  echo "       ROUTE=kernel bash scripts/kaggle_submit.sh RUN...  (run folders or config folders under runs/)" >&2
  exit 2
fi
step() { printf '\n[kaggle_submit] %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

COMPETITION="${COMPETITION:-waveform-inversion}"
SAMPLE="${SAMPLE:-data/waveform-inversion/sample_submission.csv}"
MESSAGE="${MESSAGE:-kagglekit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo local): $*}"
WAIT_ARGS=()
[ -n "${NO_WAIT:-}" ] && WAIT_ARGS=(--no-wait)

submit_csv() {  # validate, upload, wait for the score, record it in the CSV's runs
  step "validate $1 against $SAMPLE"
  run "$KK" fwi validate "$1" --sample-submission "$SAMPLE"
  step "submit $1 to $COMPETITION"
  run "$KK" kaggle submit "$1" -c "$COMPETITION" -m "$MESSAGE" "${WAIT_ARGS[@]}"
}

if [ "$ROUTE" = csv ]; then
  submit_csv "$1"
  echo "[kaggle_submit] done: https://www.kaggle.com/competitions/$COMPETITION/submissions"
  exit 0
fi
if [ "$ROUTE" != kernel ]; then
  echo "ROUTE must be csv or kernel, got $ROUTE" >&2
  exit 2
fi

OWNER="${OWNER:-$("$KK" kaggle whoami)}"
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
if [ -n "${CODE_COMPETITION:-}" ]; then
  step "8/8 submit $KERNEL version $VERSION to the code competition $COMPETITION"
  run "$KK" kaggle submit -c "$COMPETITION" --kernel "$KERNEL" --kernel-version "$VERSION" --output-file submission.csv \
    -m "$MESSAGE" "${WAIT_ARGS[@]}"
else
  step "8/8 the kernel's CSV through the CSV route"
  submit_csv "$STAGE/output/submission.csv"
fi
echo "[kaggle_submit] done: https://www.kaggle.com/competitions/$COMPETITION/submissions"

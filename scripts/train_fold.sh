#!/usr/bin/env bash
# Train one fold of a config.
#   bash scripts/train_fold.sh                                  # the main job: synthetic competition, small UNet, fold 0, CPU
#   bash scripts/train_fold.sh configs/fwi/hgnet_b2.yaml 3 train.lr=3e-4 train.epochs=20
#   NPROC=2 bash scripts/train_fold.sh configs/fwi/tiny_unet.yaml 0   # DDP with torchrun (gloo on CPU, NCCL on GPUs)
# Reruns continue the run folder from last.pt (--resume); a finished run just prints its table.
# When the config reads the embedded default data (data/synthetic/converted), it is simulated
# with deepwave and converted first if missing (about 2 minutes on 2 CPU cores).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
CONFIG="${1:-configs/fwi/small_unet.yaml}"
FOLD="${2:-0}"
shift $(( $# < 2 ? $# : 2 ))
NPROC="${NPROC:-1}"

DATA_ROOT="$("$PY" -c 'import sys; from kagglekit.config import load_config; print(load_config(sys.argv[1], sys.argv[2:]).data.folders[0])' "$CONFIG" "$@")"
if [ "$DATA_ROOT" = "data/synthetic/converted" ]; then
  # `fwi simulate` runs one single-threaded worker per core (or one per GPU); training keeps torch's threads
  bash "$ROOT/scripts/make_synthetic.sh"
fi

if [ "$NPROC" -gt 1 ]; then
  exec "$ROOT/.venv/bin/torchrun" --standalone --nproc_per_node="$NPROC" -m kagglekit.cli train "$CONFIG" --fold "$FOLD" --resume "$@"
fi
exec "$PY" -m kagglekit.cli train "$CONFIG" --fold "$FOLD" --resume "$@"

#!/usr/bin/env bash
# Bootstrap the project environment: .venv with pinned packages + kagglekit (editable).
# Idempotent: a stamp file records the hash of the lock file; nothing happens when it matches.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
LOCK="$ROOT/requirements.lock"
STAMP="$VENV/.kagglekit-stamp"
want="$(cat "$LOCK" pyproject.toml | sha256sum | cut -d' ' -f1)"

# Debian data package for the vision side (Fashion-MNIST IDX files); best effort without root.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "[setup] installing Debian package dataset-fashion-mnist"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
    || echo "[setup] WARNING: could not install dataset-fashion-mnist; the Fashion-MNIST tests will fail (KAGGLEKIT_NO_FMNIST=1 skips them)"
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
echo "[setup] creating $VENV (torch is a few GB; this takes a few minutes once)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r "$LOCK"
"$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT"
echo "$want" > "$STAMP"
echo "[setup] environment ready: $VENV"

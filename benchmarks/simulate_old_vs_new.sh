#!/usr/bin/env bash
# `fwi simulate` of this checkout against an older commit, in the same run (issue 20):
# each alone, then two commands at once. Outputs must be byte-identical (diff -r).
#   bash benchmarks/simulate_old_vs_new.sh [OLD_REV] [PER_FILE] [N_TEST]
#   bash benchmarks/simulate_old_vs_new.sh 3bb195f 10 40        # docs/results/2026-11-27-simulate-old-vs-new.md
# Run it alone on the machine: any other process falsifies both timings.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OLD_REV="${1:-3bb195f}"; PER_FILE="${2:-10}"; N_TEST="${3:-40}"
WORK="$(mktemp -d)"; OLD="$WORK/old"
trap 'git -C "$ROOT" worktree remove --force "$OLD" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
git -C "$ROOT" worktree add -f --detach "$OLD" "$OLD_REV" >/dev/null 2>&1
PY="$ROOT/.venv/bin/python"
old() { (cd "$OLD" && PYTHONPATH="$OLD/src" "$PY" -m kagglekit.cli fwi simulate "$WORK/old$1" --per-file "$PER_FILE" --n-test "$N_TEST" >/dev/null 2>&1); }
new() { "$PY" -m kagglekit.cli fwi simulate "$WORK/new$1" --per-file "$PER_FILE" --n-test "$N_TEST" >/dev/null 2>&1; }
seconds() { local t0; t0=$(date +%s.%N); "$@"; echo "$(date +%s.%N) - $t0" | bc; }
both() { "$1" "$2" & "$1" "$3" & wait; }
maps=$(( 20 * PER_FILE + N_TEST ))
echo "machine: $(uname -m), $(nproc) cores; $maps maps per command; old = $OLD_REV"
echo "| command | wall s | maps/s (all commands) |"
echo "|---|---:|---:|"
for row in "old alone:seconds old 1" "new alone:seconds new 1" "old two at once:seconds both old 2 3" "new two at once:seconds both new 2 3"; do
  name="${row%%:*}"; s=$(${row#*:}); n=$maps; [[ "$name" == *two* ]] && n=$(( 2 * maps ))
  printf '| %s | %.1f | %.2f |\n' "$name" "$s" "$(echo "$n / $s" | bc -l)"
done
diff -r "$WORK/old1" "$WORK/new1" >/dev/null && echo "outputs identical: yes" || echo "outputs identical: NO"

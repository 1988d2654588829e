#!/usr/bin/env bash
# The suite on a busy machine: `stress-ng --cpu 2` (Debian's stress-ng) keeps
# two cores busy while the tests run, RUNS times in a row (default 3). Exits
# non-zero at the first run that fails. Usage: scripts/stress-test.sh [RUNS]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
command -v stress-ng >/dev/null 2>&1 || { echo "stress-test: stress-ng is not installed (apt-get install stress-ng)"; exit 2; }

stress-ng --cpu 2 --quiet &
stress=$!
trap 'kill "$stress" 2>/dev/null; wait "$stress" 2>/dev/null' EXIT

npm run build >/dev/null || exit 1
for run in $(seq 1 "$runs"); do
  log=$(mktemp)
  npx tap --disable-coverage >"$log" 2>&1
  status=$?
  echo "stress-test: run $run of $runs: $(grep -E '^# \{ total' "$log" | tail -n 1) (log: $log)"
  [ "$status" -eq 0 ] || { grep -E '^\s*not ok' "$log" | head -20; exit "$status"; }
done

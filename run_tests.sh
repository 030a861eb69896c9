#!/usr/bin/env bash
# The test command: create or reuse the environment, fetch the data, run the test suite
# (library tests and every notebook under the smoke profile). Extra arguments go to pytest.
# At the end it prints its own wall time and the machine it ran on.
set -euo pipefail
cd "$(dirname "$0")"
_tests_start=$(date +%s)
_tests_duration() {
  local rc=$? s=$(( $(date +%s) - _tests_start ))
  echo "[tests] ./run_tests.sh took $((s / 60)) min $((s % 60)) s (exit $rc) on $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //' || uname -m)," \
       "$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
trap _tests_duration EXIT
source scripts/setup_env.sh
# headless: text progress bars; the Agg backend for figures drawn by the test process itself
# (notebook kernels get the inline backend from scripts/run_notebook.py, so their plots are kept)
export COMPANION_HEADLESS=1 MPLBACKEND=agg
# test-only dependencies (Ray for the sharded-certification tests), pinned in requirements-test.txt
python -c "import ray" 2>/dev/null || python -m pip install --quiet -r requirements-test.txt 2>&1 | grep -v "is ignored" || true
python -c "import ray" || { echo "[tests] could not install requirements-test.txt" >&2; exit 1; }
python -m lib.data fetch
python -m pytest -ra "$@"

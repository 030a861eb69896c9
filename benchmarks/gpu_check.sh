#!/usr/bin/env bash
# The GPU check of the `full` profile (see benchmarks/gpu_check.py): on a machine with CUDA it takes
# about 5-8 minutes and writes outputs/benchmarks/gpu_check.{md,json}; without CUDA it runs the same
# steps at tiny sizes on the CPU (what CI runs). Extra arguments go to gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
export COMPANION_HEADLESS=1
python -m lib.data fetch mnist
python benchmarks/gpu_check.py "$@"

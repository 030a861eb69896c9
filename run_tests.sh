#!/usr/bin/env bash
# The test command: create or reuse the environment, fetch the data, run the test suite
# (library tests and every notebook under the smoke profile). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_env.sh
python -m lib.data fetch
python -m pytest -ra "$@"

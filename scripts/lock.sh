#!/usr/bin/env bash
# Regenerate requirements-lock.txt (every package, exact versions) from the current .venv.
# The CPU wheel's local tag (+cpu) is dropped so the same pin takes PyPI's CUDA build elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
{ echo "# Full pinned environment (python 3.11). Regenerate with scripts/lock.sh; direct deps: requirements.txt"
  .venv/bin/python -m pip freeze --exclude-editable | grep -v -i '^smoothing-companion' | sed -E 's/^(torch==[0-9.]+)\+cpu$/\1/'
} > requirements-lock.txt

#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) from the pinned lock file.
# Sourced by run_all.sh and run_tests.sh; afterwards `python` is the venv's python.
# Reinstalls only when requirements-lock.txt changes (a stamp inside .venv records its hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${COMPANION_VENV:-$ROOT/.venv}"
LOCK="$ROOT/requirements-lock.txt"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [ -n "${CONDA_PREFIX:-}" ] && [ "${COMPANION_USE_CONDA:-0}" = "1" ]; then
  echo "[env] using the active conda environment $CONDA_PREFIX"
else
  want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
  have="$(cat "$VENV/.companion-stamp" 2>/dev/null || true)"
  if [ ! -x "$VENV/bin/python" ] || [ "$want" != "$have" ]; then
    echo "[env] creating/updating $VENV from requirements-lock.txt (a few minutes the first time)"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
    "$VENV/bin/python" -m pip install --quiet -r "$LOCK"
    "$VENV/bin/python" -m pip install --quiet --no-deps -e "$ROOT"
    echo "$want" > "$VENV/.companion-stamp"
  else
    echo "[env] reusing $VENV"
  fi
  export PATH="$VENV/bin:$PATH"
  export VIRTUAL_ENV="$VENV"
fi

# Fashion-MNIST comes from Debian's dataset-fashion-mnist when offline; install it when we can.
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null \
   && [ "${COMPANION_NO_APT:-0}" != "1" ]; then
  echo "[env] installing Debian's dataset-fashion-mnist (optional; failures are not fatal)"
  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
   || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }) \
   || echo "[env] could not install dataset-fashion-mnist; Fashion-MNIST will need the official download"
fi
export MPLBACKEND="${MPLBACKEND:-agg}"

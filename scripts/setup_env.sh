#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) from the pinned lock file, and put it
# first on PATH. Sourced by run_all.sh and run_tests.sh; safe to source in an interactive shell:
#
#   source scripts/setup_env.sh     # builds .venv if needed, then activates it in this shell
#
# It changes no shell options (no `set -e` left behind: a later failing command does not close
# your shell) and leaves only PATH and VIRTUAL_ENV set. Reinstalls only when
# requirements-lock.txt changes (a stamp inside .venv records its hash). Returns non-zero, with a
# message, when the environment cannot be built (e.g. the wrong Python version).
# Environment variables: see the table in docs/environment.md (COMPANION_VENV, COMPANION_USE_CONDA,
# COMPANION_NO_APT, COMPANION_NO_SLIDES, PYTHON).

if [ -z "${BASH_VERSION:-}" ]; then
  echo "[env] scripts/setup_env.sh is a bash script: run bash first, or (once .venv exists) source .venv/bin/activate" >&2
  return 1 2>/dev/null || exit 1
fi
_companion_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_companion_venv="${COMPANION_VENV:-$_companion_root/.venv}"
_companion_lock="$_companion_root/requirements-lock.txt"
# The lock is pinned for this Python (keep in sync with requires-python in pyproject.toml).
_companion_pyver="3.11"

# pip prints one "Location ... is ignored" warning per package for every configured local index
# that lacks it: noise. Drop those lines, keep everything else, return pip's own exit status.
_companion_pip() {
  "$_companion_venv/bin/python" -m pip "$@" 2>&1 \
    | { grep -v -E "^WARNING: Location '.*' is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

_companion_build() {
  local py="${PYTHON:-$(command -v "python$_companion_pyver" || command -v python3 || true)}"
  if [ -z "$py" ] || ! "$py" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$_companion_pyver'.split('.'))))" 2>/dev/null; then
    echo "[env] ERROR: Python $_companion_pyver is required (requirements-lock.txt pins wheels for it);" \
         "found '${py:-no python3}'$( [ -n "$py" ] && echo " = $("$py" -V 2>&1)" )." \
         "Install python$_companion_pyver, or point PYTHON=/path/to/python$_companion_pyver at one." >&2
    return 1
  fi
  echo "[env] creating/updating $_companion_venv from requirements-lock.txt with $("$py" -V 2>&1) (a few minutes the first time)"
  "$py" -m venv "$_companion_venv" || return 1
  _companion_pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  _companion_pip install --quiet -r "$_companion_lock" || { echo "[env] ERROR: pip could not install requirements-lock.txt" >&2; return 1; }
  # (PYTHONWARNINGS: setuptools' generic "editable installation" warning; docs/environment.md says where
  # `import lib` works)
  PYTHONWARNINGS=ignore _companion_pip install --quiet --no-deps -e "$_companion_root" || { echo "[env] ERROR: pip could not install the project (editable)" >&2; return 1; }
  sha256sum "$_companion_lock" | cut -d' ' -f1 > "$_companion_venv/.companion-stamp"
}

_companion_setup() {
  if [ -n "${CONDA_PREFIX:-}" ] && [ "${COMPANION_USE_CONDA:-0}" = "1" ]; then
    echo "[env] using the active conda environment $CONDA_PREFIX"
  else
    local want have
    want="$(sha256sum "$_companion_lock" | cut -d' ' -f1)"
    have="$(cat "$_companion_venv/.companion-stamp" 2>/dev/null || true)"
    if [ ! -x "$_companion_venv/bin/python" ] || [ "$want" != "$have" ]; then
      _companion_build || return 1
    else
      echo "[env] reusing $_companion_venv"
    fi
    case ":$PATH:" in *":$_companion_venv/bin:"*) ;; *) export PATH="$_companion_venv/bin:$PATH" ;; esac
    export VIRTUAL_ENV="$_companion_venv"
  fi

  # Fashion-MNIST comes from Debian's dataset-fashion-mnist when offline; install it when we can.
  if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null \
     && [ "${COMPANION_NO_APT:-0}" != "1" ]; then
    echo "[env] installing Debian's dataset-fashion-mnist (optional; failures are not fatal)"
    (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
     || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }) \
     || echo "[env] could not install dataset-fashion-mnist; Fashion-MNIST will need the official download"
  fi

  # Local reveal.js + MathJax for offline slides (npm packages; optional, once, then offline).
  if [ "${COMPANION_NO_SLIDES:-0}" != "1" ]; then
    python "$_companion_root/scripts/slides.py" fetch --quiet \
      || echo "[env] slide assets not fetched (optional; see docs/environment.md, 'Slides')"
  fi
  return 0
}

_companion_setup
_companion_rc=$?
unset -f _companion_setup _companion_build _companion_pip
unset _companion_root _companion_venv _companion_lock _companion_pyver
if [ "$_companion_rc" != 0 ]; then unset _companion_rc; return 1 2>/dev/null || exit 1; fi
unset _companion_rc

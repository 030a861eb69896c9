#!/usr/bin/env bash
# Rerun every notebook headlessly and rewrite figures/ (tables, figures) and outputs/ (executed
# notebooks, per-example logs, metrics).
#
#   ./run_all.sh                    # the default profile: quick (a 2-core CPU)
#   ./run_all.sh --profile smoke    # seconds per notebook
#   ./run_all.sh --profile full     # paper scale, meant for a GPU
#   COMPANION_PROFILE=smoke ./run_all.sh --only 00 04
#
# It creates or reuses the environment (.venv), fetches the data, then executes the notebooks
# in numeric order with papermill, passing the profile into each notebook's parameters cell.
set -euo pipefail
cd "$(dirname "$0")"
PROFILE="${COMPANION_PROFILE:-quick}"
ONLY=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE="$2"; shift 2 ;;
    --profile=*) PROFILE="${1#*=}"; shift ;;
    --only) shift; while [ $# -gt 0 ] && [[ "$1" != --* ]]; do ONLY+=("$1"); shift; done ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$PROFILE" in smoke|quick|full) ;; *) echo "profile must be smoke, quick or full, got '$PROFILE'" >&2; exit 2 ;; esac

source scripts/setup_env.sh
python -m lib.data fetch

OUT="outputs/notebooks/$PROFILE"
mkdir -p "$OUT" figures
mapfile -t NOTEBOOKS < <(ls notebooks/[0-9][0-9]_*.ipynb | sort)
if [ ${#ONLY[@]} -gt 0 ]; then
  keep=()
  for nb in "${NOTEBOOKS[@]}"; do
    for o in "${ONLY[@]}"; do [[ "$(basename "$nb")" == "$o"* ]] && { keep+=("$nb"); break; }; done
  done
  NOTEBOOKS=("${keep[@]}")
fi
total=${#NOTEBOOKS[@]}
echo "[run_all] profile=$PROFILE, $total notebooks -> $OUT, figures/"
start_all=$(date +%s)
i=0
for nb in "${NOTEBOOKS[@]}"; do
  i=$((i + 1))
  name="$(basename "$nb" .ipynb)"
  echo "[run_all] ($i/$total) $name ..."
  t0=$(date +%s)
  if ! python -m papermill "$nb" "$OUT/$name.ipynb" -p profile "$PROFILE" --cwd notebooks \
        --kernel python3 --progress-bar --log-level WARNING; then
    echo "[run_all] FAILED: $name (profile $PROFILE); the executed copy with the error is $OUT/$name.ipynb" >&2
    exit 1
  fi
  echo "[run_all] ($i/$total) $name done in $(( $(date +%s) - t0 )) s"
done
echo "[run_all] all $total notebooks done in $(( $(date +%s) - start_all )) s; see figures/ and figures/RESULTS.md"

#!/usr/bin/env bash
# Rerun every notebook headlessly and rewrite figures/ (tables, figures) and outputs/ (executed
# notebooks, per-example logs, metrics, run times); optionally build the browsable book.
#
#   ./run_all.sh                    # the default profile: quick (a CPU)
#   ./run_all.sh --profile smoke    # seconds per notebook
#   ./run_all.sh --profile full     # paper scale, meant for a GPU
#   COMPANION_PROFILE=smoke ./run_all.sh --only 00 04
#   ./run_all.sh --profile smoke --book                  # run, then build the book in outputs/book/smoke/
#   ./run_all.sh --book                                  # only rebuild the book from the last run
#   ./run_all.sh --profile smoke --only 00 01 --slides   # then lecture slides, viewable offline
#   ./run_all.sh --profile full --dataset cifar10  # CIFAR-10 in every notebook with a `dataset` parameter
#   ./run_all.sh --profile full --tiny --allow-cpu # full's choices at tiny sizes, on a CPU (what CI runs)
#
# Options: --profile P, --only NN..., --slides; --book (after the run, build the static HTML book
# of the executed notebooks, scripts/book.py; given alone, only rebuild it from the last run's
# executed notebooks); --dataset D (mnist, fashion_mnist, cifar10: passed to the notebooks whose
# parameters cell has `dataset`, and fetched first); --tiny (COMPANION_TINY=1: the full profile's
# architectures, sigma grids and test-set indexing at tiny sizes, lib/profiles.py); --allow-cpu
# (COMPANION_ALLOW_CPU=1: without it `full` stops with an error when no GPU is usable).
#
# One run at a time: the run takes a lock on the outputs folder and on the data folder (trained-model
# cache) before any work (scripts/run_lock.sh); a second ./run_all.sh on the same checkout is refused
# at once, naming the first one's PID, start time and command.
# It creates or reuses the environment (.venv), fetches the data, prints an estimate of the run's
# total for this machine (scripts/run_times.py), then executes the notebooks in numeric order with
# papermill (scripts/run_notebook.py), passing the profile into each notebook's parameters cell, and
# records each notebook's wall time with the machine, date and commit in outputs/run_times.json.
# --slides renders the lecture notebooks 00 and 01 from their executed copies to
# outputs/slides/<profile>/ (scripts/slides.py).
set -euo pipefail
cd "$(dirname "$0")"
PROFILE="${COMPANION_PROFILE:-quick}"
ONLY=()
SLIDES=0
BOOK=0
DATASET=""
COMMAND_LINE="./run_all.sh${*:+ $*}"
BOOK_ONLY=0
[ "$*" = "--book" ] && BOOK_ONLY=1
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE="$2"; shift 2 ;;
    --profile=*) PROFILE="${1#*=}"; shift ;;
    --only) shift; while [ $# -gt 0 ] && [[ "$1" != --* ]]; do ONLY+=("$1"); shift; done ;;
    --slides) SLIDES=1; shift ;;
    --book) BOOK=1; shift ;;
    --dataset) DATASET="$2"; shift 2 ;;
    --dataset=*) DATASET="${1#*=}"; shift ;;
    --tiny) export COMPANION_TINY=1; shift ;;
    --allow-cpu) export COMPANION_ALLOW_CPU=1; shift ;;
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$PROFILE" in smoke|quick|full) ;; *) echo "profile must be smoke, quick or full, got '$PROFILE'" >&2; exit 2 ;; esac
case "$DATASET" in ""|mnist|fashion_mnist|cifar10) ;; *) echo "dataset must be mnist, fashion_mnist or cifar10, got '$DATASET'" >&2; exit 2 ;; esac
if [ "${COMPANION_TINY:-0}" = 1 ] && [ "$PROFILE" != full ]; then echo "--tiny shrinks the full profile: use it with --profile full" >&2; exit 2; fi

mapfile -t NOTEBOOKS < <(ls notebooks/[0-9][0-9]_*.ipynb | sort)
if [ ${#ONLY[@]} -gt 0 ]; then
  keep=()
  for nb in "${NOTEBOOKS[@]}"; do
    for o in "${ONLY[@]}"; do [[ "$(basename "$nb")" == "$o"* ]] && { keep+=("$nb"); break; }; done
  done
  NOTEBOOKS=("${keep[@]}")
  [ ${#NOTEBOOKS[@]} -gt 0 ] || { echo "no notebook matches --only ${ONLY[*]}" >&2; exit 2; }
fi

# one run at a time on these outputs and this model cache: refused here, before any work
source scripts/run_lock.sh
companion_run_lock "$COMMAND_LINE" "${COMPANION_OUTPUTS:-outputs}" "${COMPANION_DATA:-data}" || exit 1

source scripts/setup_env.sh
if [ "$BOOK_ONLY" = 1 ]; then
  PROFILE="$(python scripts/run_times.py last-profile)" || exit 1
  echo "[run_all] rebuilding the book of the last run (profile $PROFILE) from its executed notebooks"
  python scripts/book.py build --profile "$PROFILE"
  exit $?
fi
# headless: lib.utils.progress_bar draws quiet text bars (no widgets) in the executed notebooks
export COMPANION_HEADLESS=1
if [ -n "$DATASET" ]; then python -m lib.data fetch mnist "$DATASET"; else python -m lib.data fetch; fi
if [ "$PROFILE" = full ]; then  # fail here, not hours in: full needs a GPU unless --allow-cpu
  python -c "
import sys, lib.utils as u
try:
    print('[run_all] full profile on', u.check_device('full'))
except u.DeviceError as e:
    sys.exit(f'[run_all] {e}')" || exit 1
fi

OUT="${COMPANION_OUTPUTS:-outputs}/notebooks/$PROFILE"
FIG="${COMPANION_FIGURES:-figures}"
mkdir -p "$OUT" "$FIG"
total=${#NOTEBOOKS[@]}
# every kernel uses a torch thread per usable core whatever the load (lib.utils.configure_threads: the
# numbers depend on the thread count, never on what else runs); when cores are busy at the start, the
# threads wait passively instead of spinning on a shared core (unless OMP_WAIT_POLICY is set already)
read -r FREE_CORES USABLE_CORES WAIT_POLICY < <(python -c 'import lib.utils as u
f, c = u.free_cores(), u.usable_cores(); print(f, c, u.wait_policy(f, c) or "-")')
if [ "$WAIT_POLICY" != - ]; then
  export OMP_WAIT_POLICY="$WAIT_POLICY"
  echo "[run_all] $((USABLE_CORES - FREE_CORES)) of $USABLE_CORES cores busy at the start: the notebooks keep" \
       "$USABLE_CORES threads (the same numbers as on an idle machine) and wait passively (OMP_WAIT_POLICY=PASSIVE)"
fi
# the lecture notebooks 00 and 01 use one torch thread each under smoke and quick
# (lib.utils.lecture_threads) and depend on nothing: on a machine with two free cores they run side by side
lectures=()
if [ "$PROFILE" != full ] && [ "$FREE_CORES" -ge 2 ]; then
  for nb in "${NOTEBOOKS[@]}"; do
    case "$(basename "$nb")" in 00_*|01_*) lectures+=("$nb") ;; esac
  done
  [ ${#lectures[@]} -eq 2 ] || lectures=()
fi
together=()
if [ ${#lectures[@]} -eq 2 ]; then  # the estimate counts the pair once (its longer notebook)
  together=(--together "$(basename "${lectures[0]}"),$(basename "${lectures[1]}")")
fi
echo "[run_all] profile=$PROFILE${COMPANION_TINY:+ (tiny)}${DATASET:+, dataset=$DATASET}, $total notebooks -> $OUT, $FIG/"
python scripts/run_times.py start --profile "$PROFILE" ${COMPANION_TINY:+--tiny} ${DATASET:+--dataset "$DATASET"} \
  --command "$COMMAND_LINE" "${together[@]}" "${NOTEBOOKS[@]##*/}"
start_all=$(date +%s)
# run_one NB I: execute one notebook, record its wall time; returns non-zero (with a message) on failure
run_one() {
  local nb="$1" i="$2" name t0 seconds
  name="$(basename "$nb" .ipynb)"
  echo "[run_all] ($i/$total) $name ..."
  t0=$(date +%s.%N)
  local params=(-p profile "$PROFILE")
  # the data set goes only to notebooks whose parameters cell declares one (the others are MNIST-specific)
  if [ -n "$DATASET" ] && python -c "import json,sys; nb=json.load(open(sys.argv[1])); sys.exit(0 if any('parameters' in c['metadata'].get('tags', []) and 'dataset =' in ''.join(c['source']) for c in nb['cells']) else 1)" "$nb"; then
    params+=(-p dataset "$DATASET")
  fi
  if ! python scripts/run_notebook.py "$nb" "$OUT/$name.ipynb" "${params[@]}" --cwd notebooks \
        --progress-bar; then
    echo "[run_all] FAILED: $name (profile $PROFILE); the executed copy with the error is $OUT/$name.ipynb" >&2
    return 1
  fi
  seconds=$(python -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.1f}')" "$(date +%s.%N)" "$t0")
  echo "$seconds" > "$OUT/.$name.seconds"
  echo "[run_all] ($i/$total) $name done in $seconds s"
}
record() {  # record one notebook's wall time (one writer at a time: after any concurrent pair)
  local name
  name="$(basename "$1" .ipynb)"
  python scripts/run_times.py record --profile "$PROFILE" --notebook "$name" --seconds "$(cat "$OUT/.$name.seconds")"
  rm -f "$OUT/.$name.seconds"
}
i=0
for nb in "${NOTEBOOKS[@]}"; do
  i=$((i + 1))
  if [ ${#lectures[@]} -eq 2 ] && [ "$nb" = "${lectures[1]}" ]; then
    continue  # ran beside the first lecture notebook
  fi
  if [ ${#lectures[@]} -eq 2 ] && [ "$nb" = "${lectures[0]}" ]; then
    echo "[run_all] ($i-$((i + 1))/$total) the lecture notebooks side by side, one thread each"
    run_one "${lectures[0]}" "$i" & first=$!
    run_one "${lectures[1]}" "$((i + 1))" & second=$!
    ok=1
    wait "$first" || ok=0
    wait "$second" || ok=0
    [ "$ok" = 1 ] || exit 1
    record "${lectures[0]}"; record "${lectures[1]}"
    continue
  fi
  run_one "$nb" "$i" || exit 1
  record "$nb"
done
ran_tables=0
for nb in "${NOTEBOOKS[@]}"; do [[ "$(basename "$nb")" == 10_* ]] && ran_tables=1; done
if [ "$ran_tables" = 1 ]; then
  echo "[run_all] all $total notebooks done in $(( $(date +%s) - start_all )) s; see $FIG/ and $FIG/RESULTS.md"
else
  echo "[run_all] $total notebooks done in $(( $(date +%s) - start_all )) s; see $FIG/" \
       "($FIG/RESULTS.md is rebuilt only by 10_tables: ./run_all.sh --profile $PROFILE --only 10)"
fi
if [ "$SLIDES" = 1 ]; then
  python scripts/slides.py fetch --quiet
  python scripts/slides.py render --profile "$PROFILE" 00 01
  echo "[run_all] slides in outputs/slides/$PROFILE/ (open the .slides.html files in a browser; no network needed)"
fi
if [ "$BOOK" = 1 ]; then
  python scripts/book.py build --profile "$PROFILE"
fi
echo "[run_all] run times (with the machine, date and commit) in ${COMPANION_OUTPUTS:-outputs}/run_times.json"

#!/usr/bin/env bash
# The run-level lock of ./run_all.sh (sourced by it): one run at a time per outputs folder and per
# data folder (trained-model cache), taken before any work, and a second run refused at once with
# the first one's PID, start time and command.
#
#   source scripts/run_lock.sh
#   companion_run_lock "COMMAND LINE" DIR...   # returns 1, with a message on stderr, if held
#
# Each DIR gets DIR/.run_all.lock, locked with flock(1) on a file descriptor that stays open for the
# rest of the calling shell (and its children, the notebook kernels); the kernel releases it when
# they exit, however they exit. The lock file holds a line naming its holder.
companion_run_lock() {
  local command="$1" fd=7 dir file holder
  shift
  holder="pid $$, started $(date -u +%Y-%m-%dT%H:%M:%SZ), command: $command"
  for dir in "$@"; do
    fd=$((fd + 1))
    mkdir -p "$dir" || return 1
    file="$dir/.run_all.lock"
    # open without truncating: the holder's line must survive a refused attempt
    eval "exec $fd>>\"\$file\"" || return 1
    if ! flock -n "$fd"; then
      echo "[run_all] refused: another run of ./run_all.sh holds $file" \
           "($(cat "$file" 2>/dev/null || true)). Wait for it to finish, or stop it (kill <its pid>)." >&2
      eval "exec $fd>&-"
      return 1
    fi
    printf '%s\n' "$holder" > "$file"
  done
  return 0
}

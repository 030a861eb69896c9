#!/usr/bin/env bash
# glibc's allocator for the runs (mallopt(3)): blocks up to 32 MiB come from the heap, and freed
# memory stays there, instead of each large tensor being mapped afresh and its pages faulted in at
# every training step or pipeline call. Only where memory comes from changes, never a value (the
# weights and logs are the same bit for bit: tests/test_run_all.py); the price is a resident size
# that stays near its peak. Sourced by run_all.sh and run_tests.sh, so notebook kernels and forked
# workers inherit it; a value already in the environment wins; without glibc (macOS) nothing reads it.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-33554432}"
export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-4294967296}"

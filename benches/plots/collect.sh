#!/usr/bin/env bash
# Runs otp-load over a threads sweep (1,000,000 keys) and a keys sweep (every
# core), REPEATS times each, interleaved, and appends one JSON report per run,
# tagged with its sweep, to OUT (JSON lines) for plot.py.
# Usage: benches/plots/collect.sh OTP_LOAD OUT [SECONDS] [REPEATS]
set -euo pipefail
otp_load=$1 out=$2 seconds=${3:-4} repeats=${4:-3}
: >"$out"
for _ in $(seq "$repeats"); do
  for threads in 1 2 4 8 16; do
    "$otp_load" --threads "$threads" --keys 1000000 --seconds "$seconds" --json | tail -n 1 |
      sed 's/^{/{"sweep":"threads",/' >>"$out"
  done
  for keys in 1000 10000 100000 1000000 4000000; do
    "$otp_load" --keys "$keys" --seconds "$seconds" --json | tail -n 1 |
      sed 's/^{/{"sweep":"keys",/' >>"$out"
  done
done

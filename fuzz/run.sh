#!/usr/bin/env bash
# Runs libFuzzer targets side by side for a bounded time, each on a scratch copy
# of its committed seeds, and prints executions and coverage per target.
# Usage: fuzz/run.sh BIN_DIR WORK_DIR SECONDS TARGET...
# Exits non-zero if any target found a failure (its input is saved in WORK_DIR).
set -euo pipefail
bin_dir=$1 work_dir=$2 seconds=$3
shift 3
seeds_dir=$(cd "$(dirname "$0")" && pwd)/seeds
mkdir -p "$work_dir"
pids=()
for target in "$@"; do
  rm -rf "${work_dir:?}/$target"
  mkdir -p "$work_dir/$target/corpus"
  "$bin_dir/$target" "$work_dir/$target/corpus" "$seeds_dir/$target" \
    -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$work_dir/$target/" >"$work_dir/$target/log.txt" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  target=${*:i+1:1}
  if wait "${pids[$i]}"; then result=ok; else result=FAILED; status=1; fi
  log=$work_dir/$target/log.txt
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
  echo "fuzz $target: $result, ${runs:-?} executions in ${seconds}s (${rate:-?}/s), ${cov:-no coverage line}"
  if [ "$result" = FAILED ]; then
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -n 20 >&2 || true
  fi
done
exit $status

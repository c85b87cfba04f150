#!/usr/bin/env bash
# Runs make targets as the stages of a test run, times each, and prints the
# table and the total at the end, also when a stage fails:
#
#   scripts/stages.sh fmt-check clippy rust-test soak+fuzz-smoke
#
# A stage written `a+b` runs targets a and b side by side (each one's output is
# kept in build/stages/<target>.log and printed when both have ended, so the two
# do not interleave). Stops at the first stage that fails and exits with its status.
# The table also goes to build/stages.tsv. `make test` must stay under 15 minutes
# cold on the 2-core machine: the total says how much headroom is left.
set -uo pipefail

make_cmd=${MAKE:-make}
budget_seconds=${STAGES_BUDGET_SECONDS:-900}
log_dir=build/stages
mkdir -p "$log_dir"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

rows=()
status=0
run_start=$(now)
for stage in "$@"; do
  stage_start=$(now)
  IFS=+ read -r -a targets <<<"$stage"
  if [ "${#targets[@]}" -eq 1 ]; then
    "$make_cmd" --no-print-directory "$stage" || status=$?
  else
    pids=()
    for target in "${targets[@]}"; do
      "$make_cmd" --no-print-directory "$target" >"$log_dir/$target.log" 2>&1 &
      pids+=($!)
    done
    for i in "${!pids[@]}"; do
      wait "${pids[$i]}" || status=$?
      echo "---- ${targets[$i]} (ran beside the others of stage $stage) ----"
      cat "$log_dir/${targets[$i]}.log"
    done
  fi
  result=ok
  [ "$status" -eq 0 ] || result=FAILED
  rows+=("$stage $(elapsed "$stage_start" "$(now)") $result")
  [ "$status" -eq 0 ] || break
done
total=$(elapsed "$run_start" "$(now)")

{
  echo
  printf '%-34s %9s  %s\n' stage seconds result
  for row in "${rows[@]}"; do
    read -r name seconds result <<<"$row"
    printf '%-34s %9s  %s\n' "$name" "$seconds" "$result"
  done
  printf '%-34s %9s\n' total "$total"
} | tee build/stages.txt
printf 'stage\tseconds\tresult\n' >build/stages.tsv
for row in "${rows[@]}"; do tr ' ' '\t' <<<"$row" >>build/stages.tsv; done

if awk -v t="$total" -v b="$budget_seconds" 'BEGIN { exit !(t > b) }'; then
  echo "WARNING: the stages took ${total}s, over the ${budget_seconds}s budget of make test" >&2
fi
exit "$status"

#!/usr/bin/env bash
# Fails when git tracks a build product: an ELF file (executable, library,
# object), or any file over 1 MiB outside fuzz/seeds. A 7 MB Go test binary was
# committed once; this keeps it from happening again.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
limit=$((1024 * 1024))
problems=0
while IFS= read -r -d '' path; do
  [ -f "$path" ] || continue # deleted in the work tree, or a submodule
  if [ "$(head -c 4 "$path" | od -An -c | tr -d ' ')" = '177ELF' ]; then
    echo "ERROR: git tracks an ELF file (a build product): $path" >&2
    problems=1
  fi
  size=$(stat -c %s "$path")
  case "$path" in fuzz/seeds/*) continue ;; esac
  if [ "$size" -gt "$limit" ]; then
    echo "ERROR: git tracks $path, $size bytes, over the 1 MiB limit for files outside fuzz/seeds" >&2
    problems=1
  fi
done < <(git ls-files -z)
[ "$problems" -eq 0 ] && echo "check-tracked: no build products in git ($(git ls-files | wc -l) files)"
exit "$problems"

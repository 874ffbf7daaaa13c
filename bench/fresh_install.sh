#!/usr/bin/env bash
# Time `make install` (what `make run` does before starting) in a fresh clone of this repo.
# Usage: bench/fresh_install.sh [RUNS]. The pip cache of the machine is used as it is.
set -euo pipefail
runs=${1:-3}
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
for run in $(seq 1 "$runs"); do
  target=$(mktemp -d)
  git clone -q "$repo" "$target/clone"
  start=$(date +%s.%N)
  make -C "$target/clone" install >/dev/null 2>&1
  end=$(date +%s.%N)
  echo "run $run: install_seconds=$(python3 -c "print(round($end - $start, 1))")"
  rm -rf "$target"
done

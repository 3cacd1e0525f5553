#!/usr/bin/env bash
# Runs every libFuzzer target of a CKPTMAP_FUZZ build for SECONDS each (default 60), all at
# once, from seed corpora made of the fixtures and rulebooks. Fails when a target finds a crash,
# a sanitizer report or a broken invariant; the input that did it is left in BUILD/fuzz/artifacts.
#   tools/fuzz.sh [SECONDS] [BUILD]      (BUILD defaults to build-san)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${2:-build-san}
work="$build/fuzz"
rm -rf "$work/seeds"
mkdir -p "$work/artifacts"
python3 tests/fuzz/make_seeds.py . "$work/seeds"

declare -A dicts=([safetensors_header]=json.dict [shard_index]=json.dict [rulebook]=rules.dict)
pids=()
for target in safetensors_header shard_index rulebook; do
  mkdir -p "$work/corpus/$target"
  "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -dict="tests/fuzz/${dicts[$target]}" -artifact_prefix="$work/artifacts/$target-" -print_final_stats=1 \
    "$work/corpus/$target" "$work/seeds/$target" >"$work/$target.log" 2>&1 &
  pids+=("$!")
done
status=0
i=0
for target in safetensors_header shard_index rulebook; do
  if wait "${pids[$i]}"; then
    echo "fuzz_$target: $(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' "$work/$target.log" | cut -d' ' -f2) runs in ${seconds}s, nothing found"
  else
    echo "fuzz_$target: FAILED (log: $work/$target.log)"
    tail -40 "$work/$target.log"
    status=1
  fi
  i=$((i + 1))
done
exit $status

#!/usr/bin/env bash
# durable.sh - durable queues against in-memory ones, in one run on this
# machine: ferry-bench w1b (4 producers x 250,000 x 64 B in batches of 100,
# 1 consumer acking) with every queue in memory, then durable under fsync
# always, interval and never (each ferry-bench starts its own ferryd with a
# temporary data directory), interleaved RUNS times; then store-bench for
# the recovery of a 1,000,000-message log and the disk bytes per message.
#
#   bash bench/durable.sh [-r RUNS] [-n MSGS_PER_PRODUCER]
#
# Needs a build in build/ (ninja -C build), or in $FERRY_BUILD. Prints the
# median msgs/s of each mode and its ratio to the in-memory median.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
per=250000
while getopts "r:n:" o; do
  case $o in
    r) runs=$OPTARG ;;
    n) per=$OPTARG ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
build=${FERRY_BUILD:-build}
bench=$build/bench/ferry-bench
store_bench=$build/bench/store-bench
[ -x "$bench" ] && [ -x "$store_bench" ] || { echo "durable.sh: build first (ninja -C build)" >&2; exit 2; }
out=$(mktemp -d /tmp/ferry-durable-XXXXXX)
trap 'rm -rf "$out"' EXIT

modes="memory always interval never"
for r in $(seq 1 "$runs"); do
  for m in $modes; do
    args=(-w w1b -n "$per")
    [ "$m" = memory ] || args+=(-D "$m")
    "$bench" "${args[@]}" | head -1 | awk '{print $3}' >>"$out/$m"
  done
done

median() { sort -n "$1" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
base=$(median "$out/memory")
printf "%-9s %12s %8s\n" queues "msgs/s" "vs mem"
for m in $modes; do
  med=$(median "$out/$m")
  printf "%-9s %12s %7.0f%%\n" "$m" "$med" "$(echo "100 * $med / $base" | bc -l)"
done
echo
"$store_bench" -n 1000000 -s 64 -d /tmp | grep -E "^(recover|disk)"

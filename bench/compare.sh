#!/usr/bin/env bash
# compare.sh - ferry beside the other brokers, in one run on this machine.
# Figures drift between runs on shared machines; ratios within one run hold.
#
#   bash bench/compare.sh [-r RUNS] [-W "w1b w2 ..."] [-B "redis-unix nats-tcp ..."]
#
# Needs a build in build/ (ninja -C build) and, for the other brokers, the
# packages listed in ../shared/bench-anchors/README.md. Prints, per broker
# and workload, the median of RUNS runs: "broker workload msgs/s MB/s p50_us p99_us".
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
workloads="w1a w1b w2 w3"
brokers="raw-unix redis-unix beanstalkd-unix nats-tcp nats-js-tcp"
while getopts "r:W:B:" o; do
  case $o in
    r) runs=$OPTARG ;;
    W) workloads=$OPTARG ;;
    B) brokers=$OPTARG ;;
    *) sed -n '2,10p' "$0"; exit 2 ;;
  esac
done
bench=build/bench/ferry-bench
[ -x "$bench" ] || { echo "compare.sh: build first (ninja -C build)" >&2; exit 2; }
out=$(mktemp -d /tmp/ferry-compare-XXXXXX)

for w in $workloads; do
  for r in $(seq 1 "$runs"); do
    "$bench" -w "$w" | head -1 >>"$out/ferry.txt"
    # Latency also with the consumer busy-polling (ferry_dispatch, libferry(3)).
    if [ "$w" = w2 ]; then
      "$bench" -w w2 -S 500 -B ferry-unix-busypoll | head -1 >>"$out/ferry.txt"
    fi
  done
done

anchors=../shared/bench-anchors
if [ -x "$anchors/run.sh" ] && [ -n "$brokers" ]; then
  # The anchors skip combinations that do not exist (raw has only w2-w4).
  BENCH_OUT="$out/anchors" "$anchors/run.sh" -r "$runs" -B "$brokers" -W "$workloads w4" \
    >"$out/anchors.log" 2>&1 || echo "compare.sh: anchors run failed, see $out/anchors.log" >&2
fi

echo "## medians of $runs runs (broker workload msgs_per_s MB_per_s p50_us p99_us)"
python3 - "$out/ferry.txt" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 6:
        rows[(f[0], f[1])].append(f[2:])
for (b, w), vals in rows.items():
    cols = []
    for i in range(4):
        xs = [float(v[i]) for v in vals if v[i] != "-"]
        cols.append(f"{statistics.median(xs):.1f}" if xs else "-")
    print(b, w, *cols)
PY
sed -n '/^## FINAL medians\|^## medians/,/^## spread/p' "$out/anchors.log" 2>/dev/null | grep -v '^##' || true
echo "(raw output in $out)"

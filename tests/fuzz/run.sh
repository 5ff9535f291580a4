#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS [TARGET...]: runs the libFuzzer targets of a
# -Dfuzz=true build (default: all four) for SECONDS each, starting from the
# committed seeds in tests/fuzz/corpus/TARGET (read only) and from what
# earlier runs found, kept in BUILD_DIR/fuzz-corpus/TARGET. Prints one line
# per target with the executions it ran. A finding (crash, leak, sanitizer
# report, an input slower than 10 s) leaves the input in
# BUILD_DIR/fuzz-artifacts/, prints how to replay it, and makes the script
# fail. Extra libFuzzer options may come in $FUZZ_ARGS (e.g. -jobs=2).
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS [frame|client_inbound|conn|config...]" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
seconds=$2
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame client_inbound conn config)
here=$(cd "$(dirname "$0")" && pwd)

# Stop at the first report, as the sanitizer build of the test suite does.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
for t in "${targets[@]}"; do
  exe=$build/tests/fuzz/fuzz_$t
  seeds=$here/corpus/$t
  work=$build/fuzz-corpus/$t
  artifacts=$build/fuzz-artifacts
  log=$build/fuzz-$t.log
  dict=$here/ferry.dict
  [ "$t" = config ] && dict=$here/config.dict
  if [ ! -x "$exe" ] || [ ! -d "$seeds" ]; then
    echo "fuzz $t: no target $exe or no seeds $seeds" >&2
    failed=1
    continue
  fi
  mkdir -p "$work" "$artifacts"
  # shellcheck disable=SC2086  # FUZZ_ARGS is a list of options
  "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict="$dict" -artifact_prefix="$artifacts/$t-" ${FUZZ_ARGS:-} "$work" "$seeds" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # -fork=N prints no final stats: its last progress line counts them.
  [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  if [ $rc -eq 0 ]; then
    echo "fuzz $t: ${runs:-?} executions in ${seconds}s, no finding"
  else
    failed=1
    echo "fuzz $t: FINDING after ${runs:-?} executions (exit $rc); the end of $log:" >&2
    tail -n 40 "$log" >&2
    echo "replay: $exe $artifacts/$t-<file>   (ls $artifacts)" >&2
  fi
done
exit $failed

#!/usr/bin/env bash
# Installs what is missing, builds ferry, and runs the whole test suite:
# once in a normal build (build/), once under AddressSanitizer and
# UndefinedBehaviorSanitizer (build-san/); then, when clang is there, each
# libFuzzer target for FUZZ_SECONDS (default 25) in build-fuzz/; and, when
# valgrind is there, the short form of the integration suite with ferryd
# under memcheck. Ends with "N passed, N failed". docs/TESTING.md has more.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

jobs=$(nproc)
run_build() {   # $1 = build dir, rest = meson setup options
  local dir=$1; shift
  if [ -d "$dir" ]; then meson setup --reconfigure "$dir" "$@" >/dev/null
  else meson setup "$dir" "$@" >/dev/null; fi
  # Quiet when it builds; the compiler's errors when it does not.
  ninja -C "$dir" >"$dir/ninja.log" || { tail -n 40 "$dir/ninja.log"; return 1; }
}
run_suite() {   # $1 = build dir, rest = meson setup options
  # An earlier run's log must not be counted below if this build fails
  # (then a missing log counts as one failure).
  rm -f "$1/meson-logs/testlog.json"
  run_build "$@" && meson test -C "$1" --num-processes "$jobs" --print-errorlogs
}

status=0
run_suite build || status=1
# ASan+UBSan: abort on the first report, and fail on leaks.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-san -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug || status=1

# libFuzzer (clang only): each target a bounded time, its executions
# printed; each target counts as one test in the summary.
fuzz_log=$(mktemp)
if command -v clang >/dev/null 2>&1; then
  if CC=clang run_build build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false; then
    bash tests/fuzz/run.sh build-fuzz "${FUZZ_SECONDS:-25}" 2>&1 | tee "$fuzz_log" || status=1
  else
    echo "fuzz build: FINDING: build-fuzz did not build" | tee "$fuzz_log"
    status=1
  fi
else
  echo "test.sh: clang not found: fuzz targets skipped"
fi

# valgrind's memcheck on every ferryd of the suite's short form.
valgrind_log=build/meson-logs/testlog-valgrind.json
rm -f "$valgrind_log"
if command -v valgrind >/dev/null 2>&1; then
  meson test -C build --setup valgrind --num-processes "$jobs" --print-errorlogs \
    spine hostile load example-handoff cli || status=1
else
  echo "test.sh: valgrind not found: memcheck run skipped"
fi

python3 - "$fuzz_log" build/meson-logs/testlog.json build-san/meson-logs/testlog.json \
  "$valgrind_log" <<'PY'
import json, os, sys
fuzz_log, logs = sys.argv[1], sys.argv[2:]
ok = bad = skip = 0
for line in open(fuzz_log):
    if line.startswith("fuzz "):  # one line per target from run.sh
        ok += "no finding" in line
        bad += "no finding" not in line
for path in logs:
    if path.endswith("valgrind.json") and not os.path.exists(path):
        continue  # valgrind not installed: said above
    try:
        for line in open(path):
            r = json.loads(line)["result"]
            if r in ("OK", "EXPECTEDFAIL"): ok += 1
            elif r == "SKIP": skip += 1
            else: bad += 1
    except FileNotFoundError:
        bad += 1
print(f"{ok} passed, {bad} failed, {skip} skipped")
PY
rm -f "$fuzz_log"
exit $status

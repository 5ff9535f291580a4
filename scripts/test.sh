#!/usr/bin/env bash
# Installs what is missing, builds ferry, and runs the whole test suite:
# once in a normal build (build/), once under AddressSanitizer and
# UndefinedBehaviorSanitizer (build-san/). Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

jobs=$(nproc)
run_suite() {   # $1 = build dir, rest = meson setup options
  local dir=$1; shift
  if [ -d "$dir" ]; then meson setup --reconfigure "$dir" "$@" >/dev/null
  else meson setup "$dir" "$@" >/dev/null; fi
  ninja -C "$dir" >/dev/null
  meson test -C "$dir" --num-processes "$jobs" --print-errorlogs
}

status=0
run_suite build || status=1
# ASan+UBSan: abort on the first report, and fail on leaks.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-san -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug || status=1

python3 - build build-san <<'PY'
import json, sys
ok = bad = skip = 0
for d in sys.argv[1:]:
    try:
        for line in open(f"{d}/meson-logs/testlog.json"):
            r = json.loads(line)["result"]
            if r in ("OK", "EXPECTEDFAIL"): ok += 1
            elif r == "SKIP": skip += 1
            else: bad += 1
    except FileNotFoundError:
        bad += 1
print(f"{ok} passed, {bad} failed, {skip} skipped")
PY
exit $status

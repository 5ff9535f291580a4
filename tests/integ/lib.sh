# lib.sh - shell helpers for integration tests: start a real ferryd on a
# temporary socket, stop it by PID on exit, and assert.
# Needs FERRYD (and FERRY_CLI for CLI tests) from the environment (meson sets them).
# With FERRYD_VALGRIND=1 (meson test --setup valgrind) ferryd runs under
# valgrind's memcheck, and an error it reports fails the test at exit.

FERRYD=${FERRYD:?FERRYD must name the ferryd binary}
ferryd_dir=$(mktemp -d /tmp/ferry-test-XXXXXX)
ferryd_pid=""

under_valgrind() { [ -n "${FERRYD_VALGRIND:-}" ] && [ "$FERRYD_VALGRIND" != 0 ]; }

# stop_ferryd: SIGTERM, then SIGKILL. Under valgrind, fails (status 1,
# memcheck's report on stderr) if memcheck found an error.
stop_ferryd() {
  local status=0 tries=50
  under_valgrind && tries=600
  if [ -n "$ferryd_pid" ] && kill -0 "$ferryd_pid" 2>/dev/null; then
    kill -TERM "$ferryd_pid" 2>/dev/null
    for _ in $(seq 1 "$tries"); do kill -0 "$ferryd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$ferryd_pid" 2>/dev/null
    wait "$ferryd_pid" 2>/dev/null
    status=$?
  fi
  ferryd_pid=""
  if under_valgrind && [ "$status" = 99 ]; then
    echo "FAIL: memcheck reported errors in ferryd:" >&2
    cat "$ferryd_dir/valgrind.log" >&2
    return 1
  fi
  return 0
}

cleanup() {
  local rc=$?
  stop_ferryd || rc=1
  rm -rf "$ferryd_dir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_ferryd [extra ferryd args...]: sets FERRY_URL and ferryd_pid.
start_ferryd() {
  export FERRY_URL="unix:$ferryd_dir/ferryd.sock"
  # A socket file left by a killed ferryd would pass the wait below at once,
  # before the new one listens.
  rm -f "$ferryd_dir/ferryd.sock"
  if under_valgrind; then
    valgrind --quiet --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite,indirect --log-file="$ferryd_dir/valgrind.log" \
      "$FERRYD" -l "$FERRY_URL" "$@" 2>>"$ferryd_dir/ferryd.log" &
  else
    "$FERRYD" -l "$FERRY_URL" "$@" 2>>"$ferryd_dir/ferryd.log" &
  fi
  ferryd_pid=$!
  for _ in $(seq 1 200); do
    [ -S "$ferryd_dir/ferryd.sock" ] && return 0
    kill -0 "$ferryd_pid" 2>/dev/null || { cat "$ferryd_dir/ferryd.log" >&2; return 1; }
    sleep 0.05
  done
  echo "ferryd did not start" >&2
  return 1
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() { [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"; }

# lib.sh - shell helpers for integration tests: start a real ferryd on a
# temporary socket, stop it by PID on exit, and assert.
# Needs FERRYD (and FERRY_CLI for CLI tests) from the environment (meson sets them).

FERRYD=${FERRYD:?FERRYD must name the ferryd binary}
ferryd_dir=$(mktemp -d /tmp/ferry-test-XXXXXX)
ferryd_pid=""

stop_ferryd() {
  if [ -n "$ferryd_pid" ] && kill -0 "$ferryd_pid" 2>/dev/null; then
    kill -TERM "$ferryd_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$ferryd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$ferryd_pid" 2>/dev/null
    wait "$ferryd_pid" 2>/dev/null
  fi
  ferryd_pid=""
}

cleanup() {
  stop_ferryd
  rm -rf "$ferryd_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_ferryd [extra ferryd args...]: sets FERRY_URL and ferryd_pid.
start_ferryd() {
  export FERRY_URL="unix:$ferryd_dir/ferryd.sock"
  "$FERRYD" -l "$FERRY_URL" "$@" 2>>"$ferryd_dir/ferryd.log" &
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

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

# wait_listening PATH [PID]: waits until a connection to the Unix socket
# PATH is accepted (the file exists from bind(), before listen(), and a
# killed ferryd leaves its file behind), at most 10 s (60 s under
# valgrind); fails at once if process PID has ended. Like harness.c's
# wait_ready; python3 is there, since meson runs on it.
wait_listening() {
  local limit=10
  under_valgrind && limit=60
  python3 - "$1" "${2:-0}" "$limit" <<'PY'
import socket, sys, time
path, pid, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        sys.exit(0)
    except OSError:
        pass
    finally:
        s.close()
    if pid:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    sys.exit(2)  # exited, not reaped yet
        except FileNotFoundError:
            sys.exit(2)
    time.sleep(0.02)
sys.exit(1)
PY
}

# start_ferryd [extra ferryd args...]: sets FERRY_URL and ferryd_pid, and
# returns once ferryd accepts connections.
start_ferryd() {
  export FERRY_URL="unix:$ferryd_dir/ferryd.sock"
  rm -f "$ferryd_dir/ferryd.sock"
  if under_valgrind; then
    valgrind --quiet --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite,indirect --log-file="$ferryd_dir/valgrind.log" \
      "$FERRYD" -l "$FERRY_URL" "$@" 2>>"$ferryd_dir/ferryd.log" &
  else
    "$FERRYD" -l "$FERRY_URL" "$@" 2>>"$ferryd_dir/ferryd.log" &
  fi
  ferryd_pid=$!
  wait_listening "$ferryd_dir/ferryd.sock" "$ferryd_pid" && return 0
  echo "ferryd did not start listening; its log:" >&2
  cat "$ferryd_dir/ferryd.log" >&2
  return 1
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() { [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"; }

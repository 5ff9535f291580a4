#!/usr/bin/env bash
# test_reload_queues.sh - a SIGHUP puts new queue settings in force on a
# live ferryd: a queue made durable by a reload keeps what it confirms
# across a SIGKILL; one that holds messages stays in memory, and says so.
set -u
. "$(dirname "$0")/lib.sh"
FERRY=${FERRY_CLI:?FERRY_CLI must name the ferry binary}
t() { timeout 30 "$FERRY" "$@"; }
conf=$ferryd_dir/ferryd.conf
log=$ferryd_dir/ferryd.log

write_conf() {   # $1: "yes" to make queue 'late' durable
  {
    printf '[server]\ndata_dir = %s/data\n\n' "$ferryd_dir"
    printf '[queue "keep"]\ndurable = yes\n\n'
    [ "$1" = yes ] && printf '[queue "late"]\ndurable = yes\n'
  } >"$conf"
}

write_conf no
start_ferryd -c "$conf" || exit 1

# 'late' holds a message: a reload cannot make it durable yet.
t publish late early || fail "publish early"
write_conf yes
kill -HUP "$ferryd_pid"
for _ in $(seq 1 50); do grep -q "queue 'late' stays in memory" "$log" && break; sleep 0.1; done
grep -q "queue 'late' stays in memory" "$log" || fail "no 'stays in memory' line"

# Drained, the next reload makes it durable.
expect_eq "drain" "early" "$(t consume late -n 1 --timeout 5)"
kill -HUP "$ferryd_pid"
for _ in $(seq 1 50); do grep -q "queue 'late' is now durable" "$log" && break; sleep 0.1; done
grep -q "queue 'late' is now durable" "$log" || fail "no 'is now durable' line"

# What it confirms now survives a crash.
t publish late one two three || fail "publish after reload"
kill -KILL "$ferryd_pid"; wait "$ferryd_pid" 2>/dev/null; ferryd_pid=""
start_ferryd -c "$conf" || fail "restart"
expect_eq "after SIGKILL" "one
two
three" "$(t consume late -n 3 --timeout 5)"
echo "reload-queues: all checks passed"

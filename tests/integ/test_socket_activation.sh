#!/usr/bin/env bash
# test_socket_activation.sh - ferryd started by systemd-socket-activate,
# as ferryd.socket starts it: it takes the listening socket it is passed
# (and ignores the [listen] sections of its conf), and a client publishes
# and consumes through that socket.
set -u
. "$(dirname "$0")/lib.sh"
FERRY=${FERRY_CLI:?FERRY_CLI must name the ferry binary}
command -v systemd-socket-activate >/dev/null || { echo "skip: no systemd-socket-activate"; exit 77; }
"$FERRYD" --version | grep -q '+systemd' || { echo "skip: ferryd built without libsystemd"; exit 77; }
t() { timeout 30 "$@"; }

sock="$ferryd_dir/activated.sock"
conf="$ferryd_dir/ferryd.conf"
cat > "$conf" <<CONF
[listen "unused"]
address = unix:$ferryd_dir/unused.sock
[log]
level = debug
CONF

# It listens itself, and execs ferryd (same pid) at the first connection.
systemd-socket-activate -l "$sock" "$FERRYD" -c "$conf" 2>>"$ferryd_dir/ferryd.log" &
ferryd_pid=$!
for _ in $(seq 1 200); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || fail "systemd-socket-activate did not listen"

export FERRY_URL="unix:$sock"
t "$FERRY" publish jobs one two || fail "publish through the activated socket"
expect_eq "consume through the activated socket" "one
two" "$(t "$FERRY" consume jobs -n 2)"

grep -q "taking unix:$sock from systemd" "$ferryd_dir/ferryd.log" || fail "ferryd did not take systemd's socket"
[ ! -e "$ferryd_dir/unused.sock" ] || fail "ferryd opened a [listen] section under socket activation"

# SIGHUP leaves systemd's socket alone.
kill -HUP "$ferryd_pid"
for _ in $(seq 1 100); do grep -q "configuration reloaded" "$ferryd_dir/ferryd.log" && break; sleep 0.05; done
t "$FERRY" publish jobs three || fail "publish after a reload"
[ ! -e "$ferryd_dir/unused.sock" ] || fail "a reload opened a [listen] section under socket activation"

kill -TERM "$ferryd_pid"
wait "$ferryd_pid"; expect_eq "exit status after SIGTERM" 0 $?
ferryd_pid=""
! grep -q Sanitizer "$ferryd_dir/ferryd.log" || fail "sanitizer report: $(cat "$ferryd_dir/ferryd.log")"
echo "socket-activation: all checks passed"

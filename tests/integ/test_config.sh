#!/usr/bin/env bash
# test_config.sh - ferryd's conf file seen from the command line:
# --check-config on good and bad files (exit codes, one FILE:LINE line per
# error), a refused start (exit 78), a missing -c file, options over the
# file, and a daemon serving on the listeners its file names.
set -u
. "$(dirname "$0")/lib.sh"
FERRY=${FERRY_CLI:?FERRY_CLI must name the ferry binary}
SRC=${FERRY_SOURCE_ROOT:?FERRY_SOURCE_ROOT must name the source tree}
t() { timeout 30 "$@"; }

# The shipped example is valid as shipped...
shipped="$SRC/conf/ferryd.conf"
out=$(t "$FERRYD" --check-config -c "$shipped"); expect_eq "check shipped conf" 0 $?
expect_eq "check shipped conf says" "ferryd: $shipped: ok" "$out"
# ...and with every setting and section uncommented (the defaults it shows are valid).
all="$ferryd_dir/all.conf"
sed -e 's/^#\([a-z_]* = \)/\1/' -e 's/^#\(\[\)/\1/' "$shipped" > "$all"
expect_eq "uncommented settings" 44 "$(grep -c '^[a-z_]* = ' "$all")"
expect_eq "uncommented sections" 9 "$(grep -c '^\[' "$all")"
t "$FERRYD" --check-config -c "$all" >/dev/null || fail "check all-uncommented conf"

# A bad file: every error on its own line, then exit 78.
bad="$ferryd_dir/bad.conf"
cat > "$bad" <<'CONF'
[limits]
max_frame = 1KiB
max_frame = 8KiB
[bogus]
[log]
level = loud
CONF
err=$(t "$FERRYD" --check-config -c "$bad" 2>&1 >/dev/null); expect_eq "check bad conf exit" 78 $?
expect_eq "check bad conf errors" "$bad:2: key 'max_frame': '1KiB' is out of range (4KiB..256MiB)
$bad:3: key 'max_frame': duplicate key (first at line 2)
$bad:4: section [bogus]: unknown section
$bad:6: key 'level': bad level 'loud': expected error, warn, info or debug
ferryd: $bad: 4 errors" "$err"

# Starting with it is refused the same way, before any socket exists.
err=$(t "$FERRYD" -c "$bad" -l "unix:$ferryd_dir/never.sock" 2>&1); expect_eq "start with bad conf exit" 78 $?
echo "$err" | grep -q "^$bad:4: section \[bogus\]: unknown section$" || fail "start names the error: $err"
echo "$err" | grep -q "not starting" || fail "start says it is not starting: $err"
[ ! -e "$ferryd_dir/never.sock" ] || fail "a refused start created its socket"

# An explicit -c of a missing file is an error; bad option values are usage errors.
err=$(t "$FERRYD" -c "$ferryd_dir/absent.conf" 2>&1); expect_eq "missing -c file exit" 78 $?
echo "$err" | grep -q "$ferryd_dir/absent.conf: cannot open: No such file or directory" || fail "missing file: $err"
t "$FERRYD" --check-config -c "$shipped" --max-frame 1KiB >/dev/null 2>&1; expect_eq "bad option exit" 64 $?
t "$FERRYD" --check-config -c "$shipped" --pid-file relative.pid >/dev/null 2>&1; expect_eq "relative pid file exit" 64 $?

# A good file: ferryd listens where it says; max_frame comes from it...
good="$ferryd_dir/good.conf"
cat > "$good" <<CONF
[listen "here"]
address = unix:$ferryd_dir/conf.sock
mode = 0600
[limits]
max_frame = 64KiB
CONF
t "$FERRYD" --check-config -c "$good" >/dev/null || fail "check good conf"
"$FERRYD" -c "$good" 2>>"$ferryd_dir/ferryd.log" &
ferryd_pid=$!
wait_listening "$ferryd_dir/conf.sock" "$ferryd_pid" || fail "ferryd did not listen on the conf's socket"
export FERRY_URL="unix:$ferryd_dir/conf.sock"
expect_eq "socket mode" 600 "$(stat -c %a "$ferryd_dir/conf.sock")"
big=$(head -c 40000 /dev/zero | tr '\0' a)
t "$FERRY" publish jobs "$big" || fail "publish 40 KB under max_frame 64KiB"
t "$FERRY" get jobs --timeout 5 >/dev/null || fail "get it back"
stop_ferryd

# ...unless an option overrides it: -l replaces the file's listeners and
# --max-frame its value.
"$FERRYD" -c "$good" -l "unix:$ferryd_dir/cli.sock" --max-frame 32KiB 2>>"$ferryd_dir/ferryd.log" &
ferryd_pid=$!
wait_listening "$ferryd_dir/cli.sock" "$ferryd_pid" || fail "ferryd did not listen on -l's socket"
export FERRY_URL="unix:$ferryd_dir/cli.sock"
[ ! -e "$ferryd_dir/conf.sock" ] || fail "-l did not replace the file's listener"
t "$FERRY" publish jobs "$big" 2>/dev/null && fail "a 40 KB publish passed --max-frame 32KiB"
t "$FERRY" publish jobs small || fail "publish under --max-frame"
stop_ferryd

! grep -q Sanitizer "$ferryd_dir/ferryd.log" || fail "sanitizer report: $(cat "$ferryd_dir/ferryd.log")"
echo "config-cli: all checks passed"

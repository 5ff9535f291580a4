#!/usr/bin/env bash
# test_cli.sh - the ferry command-line tool against a real ferryd.
set -u
. "$(dirname "$0")/lib.sh"
FERRY=${FERRY_CLI:?FERRY_CLI must name the ferry binary}
start_ferryd || exit 1
t() { timeout 30 "$FERRY" "$@"; }

# publish from arguments and from standard input; exit 0 once confirmed
t publish jobs one two || fail "publish args"
printf 'three\nfour\nfive\n' | t publish jobs || fail "publish stdin"
expect_eq "depth after publish" 5 "$(t stats jobs --json | grep -o '"depth": *[0-9]*' | grep -o '[0-9]*$')"

# consume -n prints payloads one per line, in order, and acks them
expect_eq "consume -n 2" "one
two" "$(t consume jobs -n 2)"
expect_eq "depth after consume" 3 "$(t stats jobs --json | grep -o '"depth": *[0-9]*' | grep -o '[0-9]*$')"

# end: further publishes refused with exit 1; consume drains and stops at EOS
t end jobs || fail "end"
t publish jobs late 2>/dev/null; expect_eq "publish to ended queue exit code" 1 "$?"
expect_eq "consume to end of stream" "three
four
five" "$(t consume jobs --timeout 10)"
t join jobs --timeout 5 || fail "join after drain"
t reopen jobs || fail "reopen"
t publish jobs again || fail "publish after reopen"

# get prints one message and acks it; an empty queue times out with exit 4
expect_eq "get" "again" "$(t get jobs --timeout 2)"
t get jobs --timeout 0.2 >/dev/null; expect_eq "get on empty queue exit code" 4 "$?"

# consume -n more than available: exit 4 after the idle timeout
t publish few a || fail "publish few"
t consume few -n 3 --timeout 0.5 >/dev/null; expect_eq "short consume exit code" 4 "$?"

# purge prints the count; delete removes; delete again is refused
t publish trash x y z || fail "publish trash"
expect_eq "purge count" 3 "$(t purge trash)"
t delete trash || fail "delete"
t delete trash 2>/dev/null; expect_eq "delete twice exit code" 1 "$?"

# priorities: higher first, the per-level depth in stats; a bad level is a usage error
t publish prio low1 low2 || fail "publish prio default"
t publish --priority 9 prio top || fail "publish --priority 9"
t publish -p 4 prio mid || fail "publish -p 4"
expect_eq "stats depth by priority" '[2,0,0,0,1,0,0,0,0,1]' \
  "$(t stats prio --json | grep -o '"depth_by_priority":\[[0-9,]*\]' | grep -o '\[.*\]')"
t stats prio | grep -q '9:1 4:1 0:2' || fail "stats table by priority"
expect_eq "consume by priority" "top
mid
low1
low2" "$(t consume prio -n 4)"
t publish -p 10 prio x 2>/dev/null; expect_eq "priority 10 exit code" 2 "$?"
# publish --delay: counted as delayed, not in depth, until its time (an
# hour: a loaded machine does not reach it between the two commands); then
# delivered
t publish --delay 1h waiting w1 w2 || fail "publish --delay 1h"
expect_eq "delayed after publish --delay" 2 "$(t stats waiting --json | grep -o '"delayed": *[0-9]*' | grep -o '[0-9]*$')"
expect_eq "depth of delayed" 0 "$(t stats waiting --json | grep -o '"depth": *[0-9]*' | grep -o '[0-9]*$')"
t publish --delay 1s later l1 l2 || fail "publish --delay"
expect_eq "delayed messages after their time" "l1
l2" "$(t consume later -n 2 --timeout 10)"
t publish --delay 5x later x 2>/dev/null; expect_eq "bad --delay exit code" 2 "$?"
t publish --at soon later x 2>/dev/null; expect_eq "bad --at exit code" 2 "$?"

# topics: bind, publish --topic, unbind; bad patterns are usage errors
t bind audit 'orders.#' '#.created' || fail "bind"
t publish --topic orders.eu.created o1 o2 || fail "publish --topic"
t publish --topic invoices.paid i1 || fail "publish --topic unroutable"
expect_eq "fan-out copies" "o1
o2" "$(t consume audit -n 2 --timeout 5)"
expect_eq "bindings" "#.created
orders.#" "$(t bindings audit)"
expect_eq "stats bindings" 2 "$(t stats audit --json | grep -o '"bindings": *[0-9]*' | tail -1 | grep -o '[0-9]*$')"
expect_eq "stats unroutable" 1 "$(t stats --json | grep -o '"unroutable": *[0-9]*' | grep -o '[0-9]*$')"
t unbind audit 'orders.#' || fail "unbind"
t unbind audit 'orders.#' 2>/dev/null; expect_eq "unbind twice exit code" 1 "$?"
t bind audit 'a..b' 2>/dev/null; expect_eq "bad pattern exit code" 2 "$?"
t publish --topic 'a.*' x 2>/dev/null; expect_eq "bad topic exit code" 2 "$?"

# expiry: a message past its --ttl is never delivered, and stats count it
t publish --ttl 0.2 brief gone || fail "publish --ttl"
t publish brief stays || fail "publish without ttl"
sleep 0.5
expect_eq "consume after expiry" "stays" "$(t consume brief -n 1 --timeout 5)"
expect_eq "stats expired" 1 "$(t stats brief --json | grep -o '"expired": *[0-9]*' | grep -o '[0-9]*$')"
t stats | grep -q 'EXPIRED' || fail "stats table has EXPIRED"
t publish --ttl 0 brief x 2>/dev/null; expect_eq "ttl 0 exit code" 2 "$?"
# request/reply: a responder that runs a command, a request that gets its output
t reply svc --exec 'tr a-z A-Z' -n 1 --timeout 20 &
responder=$!
expect_eq "request" "HELLO" "$(t request --timeout 20 svc hello)"
wait "$responder" || fail "reply --exec"
t request --timeout 0.3 svc nobody 2>/dev/null; expect_eq "request without responder exit code" 4 "$?"

# peek shows without consuming; move sends messages on (dead letters back: test_retry.c)
t publish parked p1 p2 p3 || fail "publish parked"
expect_eq "peek -n 2" "p1
p2" "$(t peek parked -n 2)"
expect_eq "depth after peek" 3 "$(t stats parked --json | grep -o '"depth": *[0-9]*' | grep -o '[0-9]*$')"
expect_eq "move --to" 3 "$(t move parked --to unparked)"
expect_eq "moved messages" "p1
p2
p3" "$(t consume unparked -n 3)"
t peek parked -n 101 2>/dev/null; expect_eq "peek -n 101 exit code" 2 "$?"
t move parked 2>/dev/null >/dev/null || fail "move of an empty queue"

# bad usage is exit 2; --help is exit 0 for every command
t publish 2>/dev/null; expect_eq "usage exit code" 2 "$?"
for cmd in publish consume subscribe bind unbind bindings request reply get end reopen join declare delete purge stats connections kill peek move; do
  t "$cmd" --help >/dev/null || fail "$cmd --help"
done

# no broker: exit 3
FERRY_URL="unix:$ferryd_dir/absent.sock" t stats >/dev/null 2>&1; expect_eq "no broker exit code" 3 "$?"

# stats: the table and the JSON name the queues
t stats | grep -q '^jobs ' || t stats | grep -q ' jobs ' || fail "stats table lists jobs"
t stats --json | grep -q '"name": *"jobs"' || fail "stats --json lists jobs"

# connections: a consumer holding two messages is listed with them, by name;
# kill closes it, and a second kill of the same id is NOT_FOUND (exit 1)
t publish held a b >/dev/null || fail "publish to held"
t consume held --no-ack --credit 2 --timeout 30 >/dev/null 2>&1 &
holder=$!
# Listed once connected, holding both once subscribed: wait for the latter.
line=""
for _ in $(seq 200); do
  line=$(t connections | grep 'ferry consume')
  [ "$(echo "$line" | awk '{print $3}')" = 2 ] && break
  sleep 0.1
done
[ -n "$line" ] || fail "connections lists the consumer"
expect_eq "the consumer's messages in flight" 2 "$(echo "$line" | awk '{print $3}')"
id=$(echo "$line" | awk '{print $6}')
t kill "$id" || fail "kill $id"
t kill "$id" 2>/dev/null; expect_eq "kill of a closed connection" 1 "$?"
wait "$holder" 2>/dev/null
expect_eq "messages back after kill" 2 "$(t stats held --json | grep -o '"depth": *[0-9]*' | grep -o '[0-9]*$')"

# --reconnect: a publish from stdin whose connection is killed in the middle
# connects again and sends its lines; every line arrives once. The second
# half of its input waits until the kill is done (at most 30 s), so that
# the kill comes in the middle however slow the machine.
killed="$ferryd_dir/publisher-killed"
( for i in $(seq 1 10); do echo "line $i"; done
  for _ in $(seq 600); do [ -e "$killed" ] && break; sleep 0.05; done
  for i in $(seq 11 20); do echo "line $i"; done ) | t --reconnect publish relay &
publisher=$!
id=""
for _ in $(seq 200); do
  id=$(t connections | awk '/ferry publish/ {print $6; exit}')
  [ -n "$id" ] && break
  sleep 0.05
done
[ -n "$id" ] || fail "connections lists the publisher"
t kill "$id" || fail "kill the publisher"
touch "$killed"
wait "$publisher"; expect_eq "publish through a kill" 0 "$?"
expect_eq "lines arrived once each" 20 "$(t stats relay --json | grep -o '"depth": *[0-9]*' | grep -o '[0-9]*$')"

echo "cli: all checks passed"

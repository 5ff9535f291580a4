#!/usr/bin/env bash
# with-ferryd.sh CMD [ARGS...]: runs CMD with FERRY_URL pointing at a fresh
# ferryd on a temporary socket, then stops that ferryd by PID.
set -u
. "$(dirname "$0")/lib.sh"
start_ferryd || exit 1
timeout 240 "$@"

#!/usr/bin/env bash
# Installs what is missing, builds ferry, and runs ferryd in the foreground
# on its defaults: a Unix socket at /run/ferry/ferryd.sock. Extra arguments
# go to ferryd (e.g. -l tcp://127.0.0.1:7070). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build
exec ./build/daemon/ferryd "$@"

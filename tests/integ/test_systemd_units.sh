#!/usr/bin/env bash
# test_systemd_units.sh - ferryd.service and ferryd.socket pass
# `systemd-analyze verify`, carry the hardening the issue asks for, and
# keep `systemd-analyze security` at an exposure below 2 ("OK").
set -u
. "$(dirname "$0")/lib.sh"
SRC=${FERRY_SOURCE_ROOT:?FERRY_SOURCE_ROOT must name the source tree}
SERVICE=${FERRYD_SERVICE:?FERRYD_SERVICE must name the generated ferryd.service}
command -v systemd-analyze >/dev/null || { echo "skip: no systemd-analyze"; exit 77; }

# The unit as built names the installed ferryd; point it at this build's
# (verify checks that the program exists). Man pages are not installed.
units="$ferryd_dir/units"
mkdir -p "$units"
sed "s|^ExecStart=[^ ]*/ferryd |ExecStart=$FERRYD |" "$SERVICE" > "$units/ferryd.service"
cp "$SRC/systemd/ferryd.socket" "$units/"
grep -q "^ExecStart=$FERRYD " "$units/ferryd.service" || fail "ExecStart not found in $SERVICE"

out=$(systemd-analyze verify --man=no "$units/ferryd.service" "$units/ferryd.socket" 2>&1)
expect_eq "systemd-analyze verify exit" 0 $?
[ -z "$out" ] || fail "systemd-analyze verify said: $out"

for setting in Type=notify WatchdogSec= User=ferry RuntimeDirectory=ferry StateDirectory=ferry \
    ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes PrivateTmp=yes \
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" SystemCallFilter=@system-service; do
  grep -q "^$setting" "$units/ferryd.service" || fail "ferryd.service lacks $setting"
done

# --offline appeared in systemd 250.
if sec=$(systemd-analyze security --offline=yes "$units/ferryd.service" 2>/dev/null); then
  level=$(echo "$sec" | sed -n 's/.*Overall exposure level for ferryd.service: \([0-9.]*\).*/\1/p')
  [ -n "$level" ] || fail "no exposure level in: $sec"
  awk -v l="$level" 'BEGIN { exit !(l < 2.0) }' || fail "exposure level $level, expected below 2.0"
  echo "systemd-analyze security: exposure $level"
fi
echo "systemd-units: all checks passed"

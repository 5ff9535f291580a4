#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing ferry need.
# Idempotent: installs only what is missing; needs root (or sudo).
set -euo pipefail

packages=(
  gcc meson ninja-build pkg-config   # toolchain and build
  libevent-dev libmsgpack-dev        # ferryd and libferry
  check                              # unit and integration tests
  libinih-dev                        # ferryd's conf file (inih)
  libsystemd-dev                     # ferryd: Type=notify, watchdog, socket activation
  systemd                            # systemd-analyze and systemd-socket-activate (tests)
  procps                             # ps/pkill used by test clean-up checks
  clang libclang-rt-14-dev           # libFuzzer targets (tests/fuzz, -Dfuzz=true)
  valgrind                           # memcheck run of the integration suite
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

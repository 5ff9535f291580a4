#!/usr/bin/env bash
# test_install.sh - `meson install` into a temporary DESTDIR puts every
# file in place (ferryd, ferry, libferry shared and static, ferry.h,
# ferry.pc, the man pages, the units, sysusers/tmpfiles snippets, the
# example conf but no real one); a small C program is then built against
# the installed ferry.pc and run against a live ferryd.
set -u
. "$(dirname "$0")/lib.sh"
BUILD=${FERRY_BUILD_ROOT:?FERRY_BUILD_ROOT must name the build tree}
HERE=$(cd "$(dirname "$0")" && pwd)
for tool in meson pkg-config cc; do
  command -v "$tool" >/dev/null || { echo "skip: no $tool"; exit 77; }
done

dest="$ferryd_dir/destdir"
meson install -C "$BUILD" --destdir "$dest" --no-rebuild --quiet >"$ferryd_dir/install.log" 2>&1 \
  || { cat "$ferryd_dir/install.log" >&2; fail "meson install"; }

installed() {   # installed PATH-SUFFIX: prints the one file that ends so
  local found
  found=$(find "$dest" -path "*/$1" \( -type f -o -type l \) | head -n 1)
  [ -n "$found" ] || fail "not installed: $1"
  echo "$found"
}
for f in sbin/ferryd bin/ferry include/ferry.h pkgconfig/ferry.pc libferry.so libferry.a \
    man8/ferryd.8 man5/ferryd.conf.5 man1/ferry.1 man3/libferry.3 \
    system/ferryd.service system/ferryd.socket sysusers.d/ferry.conf tmpfiles.d/ferry.conf \
    ferry/ferryd.conf.example; do
  installed "$f" >/dev/null
done
[ -z "$(find "$dest" -path '*/ferry/ferryd.conf')" ] || fail "a real ferryd.conf was installed"
"$(installed sbin/ferryd)" --version | grep -q '^ferryd ' || fail "installed ferryd --version"

# Build against the installed ferry.pc, its prefix moved into DESTDIR.
pc=$(installed pkgconfig/ferry.pc)
export PKG_CONFIG_PATH=$(dirname "$pc")
prefix=$(pkg-config --variable=prefix ferry)
pcflags=(--define-variable=prefix="$dest$prefix")
cflags=$(pkg-config "${pcflags[@]}" --cflags ferry) || fail "pkg-config --cflags"
libs=$(pkg-config "${pcflags[@]}" --libs ferry) || fail "pkg-config --libs"
libdir=$(pkg-config "${pcflags[@]}" --variable=libdir ferry)
case "$cflags" in *"$dest"*) ;; *) fail "cflags do not point into DESTDIR: $cflags";; esac
sanitize=()
[ "${FERRY_SANITIZE:-none}" = none ] || sanitize=(-fsanitize="$FERRY_SANITIZE")
# shellcheck disable=SC2086 # pkg-config output is a list of words
cc -std=c11 -Wall -Werror "${sanitize[@]}" $cflags "$HERE/install_client.c" -o "$ferryd_dir/client" \
  $libs -Wl,-rpath,"$libdir" || fail "building against the installed ferry.pc"
ldd "$ferryd_dir/client" | grep -q "$dest" || fail "the program does not use the installed libferry"

start_ferryd || exit 1
expect_eq "installed client against a live ferryd" ok "$(timeout 30 "$ferryd_dir/client")"
echo "install: all checks passed"

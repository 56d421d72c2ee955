#!/bin/sh
# tests/debian/packages.sh SRC
# Build the Debian packages of SRC (debian/) in a temporary copy with
# `dpkg-buildpackage -us -uc -b`, as README says; lintian must report no
# error.  Unpack them with `dpkg-deb -x` into a temporary root and run from
# there: the program (its --help naming the docs and examples beside it, a
# server and a client in tasks), an embedding program built with the
# packaged luasock.pc and header, and lua5.4 loading the packaged module;
# the last two must use the packaged library or module, found through
# LD_LIBRARY_PATH or LUA_CPATH into the root.  Exits 77 (skipped) when
# dpkg-buildpackage is missing (tools/deps.sh installs it).
set -eu
src=$(readlink -f "$1")
command -v dpkg-buildpackage >/dev/null || {
  echo "skipped: dpkg-buildpackage is missing (apt-get install dpkg-dev debhelper)"
  exit 77
}
tmp=$(mktemp -d /tmp/luasock-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "$*" >&2; exit 1; }

# A copy of the sources without the build directories, then the packages.
mkdir "$tmp/luasock"
(cd "$src" && tar --exclude='./build*' --exclude='./obj-*' --exclude=./.git -cf - .) |
  tar -C "$tmp/luasock" -xf -
if ! (cd "$tmp/luasock" &&
      DEB_BUILD_OPTIONS="nocheck noddebs parallel=2" dpkg-buildpackage -us -uc -b) \
      >"$tmp/build.log" 2>&1; then
  tail -n 40 "$tmp/build.log" >&2
  fail "dpkg-buildpackage failed"
fi
for p in luasock libluasock0 libluasock-dev lua-luasock; do
  ls "$tmp/${p}_"*.deb >/dev/null 2>&1 || fail "package $p was not built"
done
lintian --fail-on error "$tmp"/luasock_*.changes >"$tmp/lintian.log" 2>&1 ||
  { cat "$tmp/lintian.log" >&2; fail "lintian reports errors"; }

# OpenSSL is loaded with dlopen (src/tls_lib.c): dpkg-shlibdeps cannot see
# it, so the packages with the TLS code must name it.
for p in luasock libluasock0 lua-luasock; do
  dpkg-deb -f "$tmp/${p}_"*.deb Depends | grep -q 'libssl3' ||
    fail "package $p does not depend on libssl3"
done

root="$tmp/root"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$root"; done
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir="$root/usr/lib/$arch"
docdir="$root/usr/share/doc/luasock"
for f in usr/share/man/man1/luasock.1.gz usr/include/luasock.h \
         usr/share/doc/luasock/examples/server.lua "usr/lib/$arch/lua/5.4/luasock.so"; do
  test -f "$root/$f" || fail "not in the packages: /$f"
done

# The program, from the root (it has the library's code linked in), of
# the version debian/changelog names.
export LD_LIBRARY_PATH="$libdir"
version=$(cd "$tmp/luasock" && dpkg-parsechangelog -S Version)
"$root/usr/bin/luasock" --version | grep -q "^luasock $version " ||
  fail "debian/changelog says $version, the program $("$root/usr/bin/luasock" --version)"
"$root/usr/bin/luasock" --help | grep -qxF "README and example scripts: $docdir, $docdir/examples" ||
  fail "luasock --help does not name $docdir"
"$root/usr/bin/luasock" - <<'LUA' || fail "the packaged luasock failed"
local socket = require "socket"
local srv = assert(socket.create_server({ "127.0.0.1", 0 }))
srv:settimeout(2)
assert(socket.run(function()
  socket.spawn(function()
    local conn = assert(srv:accept())
    conn:settimeout(2)
    conn:sendall(assert(conn:recv(100)):upper())
    conn:close()
  end)
  local c = assert(socket.create_connection(srv:getsockname(), 2))
  c:sendall("packaged")
  assert(c:recv(100) == "PACKAGED", "wrong reply")
  c:close()
end))
LUA

# An embedding program built from the packaged header and luasock.pc.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
test "$(readlink -f "$(pkg-config --variable=includedir luasock)")" = "$root/usr/include" ||
  fail "luasock.pc does not point into the unpacked root"
# shellcheck disable=SC2046 # pkg-config's words are meant to split
${CC:-cc} -o "$tmp/embed" "$src/tests/embed/embed.c" $(pkg-config --cflags --libs luasock)
"$tmp/embed" "$libdir"

# The module in the stock lua5.4.
LUA_CPATH="$libdir/lua/5.4/?.so" LIBDIR="$libdir" lua5.4 -e '
  local s = require "luasock"
  assert(s.socket():close())
  local maps = assert(io.open("/proc/self/maps")):read("a")
  print(maps:find(os.getenv("LIBDIR") .. "/lua/5.4/luasock.so", 1, true) ~= nil)' |
  grep -qx true || fail "lua5.4 cannot use the packaged module"
echo "Debian packages: ok"

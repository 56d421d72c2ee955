#!/bin/sh
# tests/embed/installed.sh BUILD SRC [CFLAGS...]
# Install the build BUILD into a temporary prefix; compile SRC's
# tests/embed/embed.c against it with the installed pkg-config file (and
# CFLAGS, e.g. the sanitizers) and run it the two ways README gives for a
# prefix outside the loader's path: LD_LIBRARY_PATH, and an rpath linked
# in (without either it must fail to start, as README warns); it must use
# the installed library, not the build tree's.  Then run the installed
# luasock on a script from another directory that requires socket and the
# bundled modules: the program has the library's code linked in and maps
# no libluasock at all.  The man page, README and the example scripts must
# be installed, and --help must name where.  lua5.4 must find the
# installed luasock.so through LUA_CPATH (LUA_PRELOAD: what to preload
# into lua5.4 alone, the sanitizer's runtime for a sanitized build).
set -eu
build=$1
src=$2
shift 2
tmp=$(mktemp -d /tmp/luasock-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$(readlink -f "$tmp")/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
pcfile=$(find "$prefix" -name luasock.pc)
test -n "$pcfile" || { echo "no luasock.pc installed" >&2; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pcfile")"
flags=$(pkg-config --cflags --libs luasock)
libdir=$(readlink -f "$(pkg-config --variable=libdir luasock)")
case "$libdir" in
  "$prefix"/*) ;;
  *) echo "luasock.pc points to $libdir, not into $prefix" >&2; exit 1 ;;
esac

# shellcheck disable=SC2086 # pkg-config's words are meant to split
${CC:-cc} "$@" -o "$tmp/embed" "$src/tests/embed/embed.c" $flags
if "$tmp/embed" "$libdir" 2>/dev/null; then
  echo "embed started without LD_LIBRARY_PATH or rpath: this test proves nothing" >&2
  exit 1
fi
LD_LIBRARY_PATH="$libdir" "$tmp/embed" "$libdir"
# shellcheck disable=SC2086
${CC:-cc} "$@" -o "$tmp/embed" "$src/tests/embed/embed.c" $flags \
  -Wl,-rpath,"$(pkg-config --variable=libdir luasock)"
"$tmp/embed" "$libdir"

docdir="$prefix/share/doc/luasock"
for f in "$prefix/share/man/man1/luasock.1" "$docdir/README.md" "$docdir/examples/server.lua"; do
  test -f "$f" || { echo "not installed: $f" >&2; exit 1; }
done
"$prefix/bin/luasock" --help | grep -qxF "README and example scripts: $docdir, $docdir/examples" ||
  { echo "--help does not name $docdir" >&2; exit 1; }

mkdir "$tmp/elsewhere"
cat > "$tmp/elsewhere/uses.lua" <<'LUA'
local socket = require "socket"
require "luasock.create"
local s = assert(socket.socket())
assert(s:close())
local maps = assert(io.open("/proc/self/maps")):read("a")
local lib = maps:match("%s(/%S*libluasock%.so[%.%d]*)\n")
assert(lib == nil, "the program mapped " .. tostring(lib))
print("installed luasock: ok")
LUA
cd "$tmp/elsewhere"
env -u LUA_PATH -u LUA_PATH_5_4 -u LUA_INIT -u LUA_INIT_5_4 "$prefix/bin/luasock" uses.lua

module=$(find "$prefix" -name luasock.so)
case "$module" in
  "$prefix"/*/lua/5.4/luasock.so) ;;
  *) echo "luasock.so not installed in a lua/5.4 directory: '$module'" >&2; exit 1 ;;
esac
env -u LUA_INIT -u LUA_INIT_5_4 LUA_CPATH="$(dirname "$module")/?.so" \
  ${LUA_PRELOAD:+LD_PRELOAD="$LUA_PRELOAD"} \
  lua5.4 -e 'local s = require "luasock" assert(s.socket():close()) print(s.socket ~= nil)' |
  grep -qx true || { echo "lua5.4 cannot use the installed luasock.so" >&2; exit 1; }

#!/bin/sh
# tests/build/without_busted.sh SRC
# Someone who only wants the program has the compiler, CMake, Lua and
# readline, and no busted: `cmake -DBUILD_TESTING=OFF` must configure and
# build a working luasock for them.  Busted is hidden here by a PATH of
# links to every program but busted, and by telling CMake to ignore the
# directories that hold the real one.  As a check that it really is
# hidden, configuring with the tests on must then fail for want of busted.
set -eu
src=$(readlink -f "$1")
tmp=$(mktemp -d /tmp/luasock-nobusted.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

mkdir "$tmp/bin"
ignore=""
for dir in $(echo "$PATH" | tr ':' ' '); do
  [ -d "$dir" ] || continue
  [ -e "$dir/busted" ] && ignore="$ignore;$dir;$(readlink -f "$dir")"
  ln -s "$dir"/* "$tmp/bin/" 2>/dev/null || :   # the first of a name wins
done
rm -f "$tmp/bin/busted"
PATH="$tmp/bin"
export PATH
! command -v busted >/dev/null || { echo "busted is still on PATH" >&2; exit 1; }

if cmake -S "$src" -B "$tmp/with-tests" -DCMAKE_IGNORE_PATH="$ignore" \
     >"$tmp/with-tests.log" 2>&1 ||
   ! grep -q "Could not find BUSTED" "$tmp/with-tests.log"; then
  cat "$tmp/with-tests.log" >&2
  echo "busted is not hidden: configuring with the tests did not fail for it" >&2
  exit 1
fi

cmake -S "$src" -B "$tmp/build" -DBUILD_TESTING=OFF -DCMAKE_IGNORE_PATH="$ignore" >/dev/null
cmake --build "$tmp/build" -j 2 >/dev/null
! grep -q "^BUSTED" "$tmp/build/CMakeCache.txt" || { echo "busted was looked for" >&2; exit 1; }
[ ! -e "$tmp/build/embed" ] || { echo "a test program was built" >&2; exit 1; }
"$tmp/build/luasock" -e 'local s = require("socket").socket() print(s:close())' | grep -qx true
echo "built without busted: ok"

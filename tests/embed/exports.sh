#!/bin/sh
# tests/embed/exports.sh LIB
# The shared library LIB exports exactly the public API of luasock.h
# (LUASOCK_API): its other functions and tables have hidden visibility, so
# that an embedding application can neither call them nor clash with them.
set -eu
want="luaopen_luasock
luaopen_socket
luasock_interrupt
luasock_openlibs"
got=$(nm -D --defined-only "$1" | awk '{ print $NF }' | sort)
if [ "$got" != "$want" ]; then
  echo "$1 exports:"; echo "$got"
  echo "expected exactly:"; echo "$want"
  exit 1
fi
echo "exports: ok"

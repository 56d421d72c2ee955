#!/bin/sh
# tests/embed/exports.sh LIB [NAME...]
# The shared library LIB exports exactly the public API of luasock.h
# (LUASOCK_API), and the NAMEs given (luaopen_luasock for the module for
# lua5.4): its other functions and tables have hidden visibility, so that
# an embedding application can neither call them nor clash with them.
set -eu
lib=$1
shift
want=$(printf '%s\n' luaopen_socket luasock_interrupt luasock_openlibs "$@" | sort)
got=$(nm -D --defined-only "$lib" | awk '{ print $NF }' | sort)
if [ "$got" != "$want" ]; then
  echo "$lib exports:"; echo "$got"
  echo "expected exactly:"; echo "$want"
  exit 1
fi
echo "exports: ok"

#!/bin/sh
# tests/build/eintr.sh SRC
# An interrupted syscall has one policy, the I/O driver's (src/core/wait.c:
# try again at once; Ctrl-C raises "interrupted!"), so that every call of
# the module, TLS included, waits, retries and stops alike.  A module file
# that handles EINTR itself (a retry loop around its syscall) escapes it:
# Ctrl-C would not stop that call, or would stop it after it consumed
# bytes.  So no file of the module names EINTR, except these, which make
# no socket call of the module:
#   src/core/             the scheduler and the driver themselves
#   src/program/          the luasock program (its SIGINT handler)
#   src/base/errors.c     the socket.errno table names it
#   src/luasock.h         the public header, on what an embedder's
#                         handler makes a wait see
#   src/workers.c         the supervisor's relay of its workers' pipes,
#                         which runs no task and no driver
set -eu
src=$1/src
found=$(grep -rn EINTR "$src" --include='*.c' --include='*.h' |
        sed "s|^$src/||" |
        grep -v -e '^core/' -e '^program/' -e '^base/errors\.c:' -e '^luasock\.h:' \
                -e '^workers\.c:' || :)
if [ -n "$found" ]; then
  echo "EINTR handled outside the I/O driver (src/core/wait.c):"
  echo "$found"
  exit 1
fi
echo "eintr: ok"

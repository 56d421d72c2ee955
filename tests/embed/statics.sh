#!/bin/sh
# tests/embed/statics.sh LIB
# The shared library LIB keeps no mutable process-wide state of its own
# beyond the list below: each lua_State has its own loop, so two states
# may run on two threads (tests/embed/threads.c), and the program's
# SIGINT handler keeps the state it stops in the program, not here.  Its
# zero-initialised statics (nm: b, B) are compared with the list:
#   bio_method, bio_once   the OpenSSL BIO method, made once (tls_conn.c)
#   load_once, load_error, tlsfn_*
#                          OpenSSL, loaded once per process at the first
#                          use of TLS: its functions' pointers (tls_lib.c)
set -eu
lib=$1
want=$(printf '%s\n' bio_method bio_once load_error load_once | sort)
got=$(nm "$lib" | awk '$2 == "b" || $2 == "B" { print $3 }' |
      grep -v -e '^__' -e '^_end$' -e '^_edata$' -e '^completed\.' -e '^tlsfn_' | sort)
if [ "$got" != "$want" ]; then
  echo "$lib keeps these statics:"; echo "$got"
  echo "expected exactly:"; echo "$want"
  exit 1
fi
echo "statics: ok"

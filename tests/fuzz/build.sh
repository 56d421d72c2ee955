#!/bin/sh
# Build the libFuzzer targets with clang (libclang-rt-dev provides the
# fuzzer runtime) into OUT: the library's sources and the embedded Lua
# modules of the build dir BUILD, instrumented with ASan and UBSan, and
# tests/fuzz/fuzz_main.c once per target script (addr, stream, api); BUILD
# also holds the generated tls_renames.h.
#   tests/fuzz/build.sh BUILD OUT
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$1 out=$2
mkdir -p "$out"
wraps="-Wl,--wrap=getaddrinfo,--wrap=getnameinfo,--wrap=connect,--wrap=sendto,--wrap=sendmsg,--wrap=close"
flags="-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
  -D_GNU_SOURCE -std=gnu11 -I$src/src -I$build $(pkg-config --cflags lua5.4 openssl)
  -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED"
objs=""
# The newest header, the generated renames of the OpenSSL list included:
# an object older than it may hold a struct's old layout.
newest=$(ls -t $(find "$src/src" -name "*.h") "$build/tls_renames.h" | head -n 1)
for f in $(find "$src/src" -name "*.c" ! -path "*/program/*" | sort) "$build/lua_modules.c"; do
  case $(basename "$f") in main.c|repl.c) continue ;; esac
  o="$out/$(basename "$f" .c).o"
  # Again when the source or any header changed.
  if [ ! -e "$o" ] || [ "$f" -nt "$o" ] || [ "$newest" -nt "$o" ]; then
    clang $flags -c "$f" -o "$o"
  fi
  objs="$objs $o"
done
for t in addr stream api; do
  clang $flags -fsanitize=fuzzer -DFUZZ_SCRIPT="\"$src/tests/fuzz/$t.lua\"" \
    -DFUZZ_DIR="\"$src/tests/fuzz\"" "$src/tests/fuzz/fuzz_main.c" $objs \
    $wraps $(pkg-config --libs lua5.4 openssl) -lpthread -lm -o "$out/fuzz_$t"
done

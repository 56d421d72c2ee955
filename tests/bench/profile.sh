#!/usr/bin/env bash
# tests/bench/profile.sh - where does an echo server spend its time?
#
#   tests/bench/profile.sh [BUILD_DIR] [lua|c|py] [perf|callgrind|stat]
#                          [-c CONNS] [-d SECS | -n REQUESTS] [-m ping|bulk]
#
# Starts the server pinned to CPU 0, drives it from CPU 1 with the load
# generator (64-byte ping-pong on CONNS connections, or the bulk echo) and
#   perf:      samples it with perf record -g and prints the top symbols
#              (self time) and the callers of the top ones;
#   callgrind: runs it under valgrind --tool=callgrind (repeatable
#              instruction counts; ~50x slower, so keep -d short) and
#              prints the top functions and instructions per request;
#   stat:      perf stat of the server over the load (task-clock,
#              context switches, and instructions where the CPU allows).
# Use a RelWithDebInfo build so that luasock's functions have names; Lua's
# have theirs too, as the program links the distribution's liblua5.4.a
# (its liblua5.4.so is stripped).
# With -n the load is exactly REQUESTS requests (loadgen ping -n), and
# callgrind also prints the total: two runs with N1 and N2 requests give
# the instructions per request free of the start and the connections'
# setup, (total2 - total1) / (N2 - N1).
# KEEP=DIR keeps the raw output (perf.data, callgrind dumps) in DIR;
# BULK_BYTES=N sets the bulk size (the 1 GiB default is slow under callgrind).
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=build kind=lua tool=perf conns=50 secs=5 mode=ping requests=""
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ] && [ -d "$1" ]; then build=$1; shift; fi
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then kind=$1; shift; fi
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then tool=$1; shift; fi
while [ $# -gt 0 ]; do
  case $1 in
    -c) conns=$2; shift ;;
    -d) secs=$2; shift ;;
    -n) requests=$2; shift ;;
    -m) mode=$2; shift ;;
    *) echo "usage: $0 [BUILD_DIR] [lua|c|py] [perf|callgrind|stat] [-c conns] [-d secs | -n requests] [-m ping|bulk]" >&2; exit 2 ;;
  esac
  shift
done
build=$(cd "$build" && pwd) || exit 2
ulimit -n $((conns + 200)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

case $kind in
  c)   cmd=("$build/bench/echo_server" 0) ;;
  lua) cmd=("$build/luasock" "$here/echo.lua" 0) ;;
  py)  cmd=("$(python3 -c 'import sys; print(sys.executable)')" "$here/echo.py" 0) ;;
  *)   echo "unknown server $kind" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
spid="" ppid_=""
cleanup() {
  [ -n "$ppid_" ] && kill -INT "$ppid_" 2>/dev/null && wait "$ppid_" 2>/dev/null
  [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
  [ -n "${KEEP:-}" ] && cp -r "$tmp" "$KEEP"; rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkfifo "$tmp/out"
if [ "$tool" = callgrind ]; then
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
    "${cmd[@]}" >"$tmp/out" 2>"$tmp/err" &
else
  taskset -c 0 "${cmd[@]}" >"$tmp/out" 2>"$tmp/err" &
fi
spid=$!
exec {sfd}<"$tmp/out"
read -r -t 30 -u "$sfd" line || { echo "server did not start" >&2; cat "$tmp/err" >&2; exit 1; }
port=${line##*:}

loadargs=(ping "$port" -c "$conns" -d "$secs" -w 0 -s "$spid" ${requests:+-n "$requests"})
[ "$mode" = bulk ] && loadargs=(bulk "$port" -s "$spid" ${BULK_BYTES:+-b "$BULK_BYTES"})
case $tool in
  perf)      perf record -F 4000 -g -o "$tmp/perf.data" -p "$spid" 2>"$tmp/perf.err" & ppid_=$! ;;
  stat)      perf stat -e task-clock,context-switches,instructions,cycles,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_wait \
               -p "$spid" -o "$tmp/stat.txt" & ppid_=$! ;;
  callgrind) callgrind_control -z "$spid" >/dev/null 2>&1 ;;   # count the load only
esac
sleep 0.2   # let perf attach before the load starts (not a synchronisation of the result)
result=$(taskset -c 1 "$build/bench/loadgen" "${loadargs[@]}" </dev/null) || { cat "$tmp/err" >&2; exit 1; }
echo "$result"
requests=$(echo "$result" | sed -n 's/.* requests=\([0-9]*\).*/\1/p')

case $tool in
  perf)
    kill -INT "$ppid_"; wait "$ppid_"; ppid_=""
    perf report -i "$tmp/perf.data" --no-children --stdio --percent-limit 0.8 \
      --sort dso,symbol -g none 2>/dev/null | grep -E '^ +[0-9]' | awk '{ print $1, $2, $4 }'
    echo "--- callers of the top symbols (caller chains, 2% cut-off)"
    perf report -i "$tmp/perf.data" --no-children --stdio --percent-limit 3 \
      -g caller,2,callee --sort symbol 2>/dev/null | grep -v '^#' | grep -v '^$' | head -120 ;;
  stat)
    kill -INT "$ppid_"; wait "$ppid_"; ppid_=""
    cat "$tmp/stat.txt" ;;
  callgrind)
    callgrind_control -d "$spid" >/dev/null 2>&1
    kill "$spid"; wait "$spid" 2>/dev/null; spid=""
    f=$tmp/cg.out.1   # the one dump asked for (cg.out is written at exit)
    total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
    [ -n "$requests" ] && awk -v t="$total" -v r="$requests" \
      'BEGIN { printf "instructions (user space): %d in all, %.0f per request\n", t, t / r }'
    # Lines for recursive frames (name'2, over 100%) and the frames every
    # sample sits under (100%) say nothing: leave them out.
    for incl in no yes; do
      echo "--- $([ $incl = no ] && echo self || echo inclusive) instructions per request, top functions"
      callgrind_annotate --auto=no --inclusive=$incl --threshold=100 "$f" 2>/dev/null |
        sed -n '/file:function/,$p' | grep -E '^ *[0-9]' | grep -v "'[0-9]" |
        awk -v r="$requests" '{ n = $1; gsub(",", "", n); if ($2 ~ /^\(100/) next;
          fn = $NF == "" ? $(NF-1) : $0; sub(/^.*%\) +/, "", fn); sub(/ \[.*$/, "", fn);
          printf "%8.0f %7s  %s\n", n / r, $2, fn }' | head -40
    done ;;
esac

#!/usr/bin/env bash
# tests/bench/run.sh - the echo benchmark: luasock's task-per-connection
# server (echo.lua) against the single-threaded C epoll server
# (echo_server.c), in interleaved rounds, server on CPU 0 and the load
# generator on CPU 1.  Builds nothing: give it a build directory made with
# CMAKE_BUILD_TYPE=Release (or RelWithDebInfo), no sanitizers.
#
#   tests/bench/run.sh [BUILD_DIR] [-r ROUNDS] [-d SECS] [-n IDLE_CONNS]
#                      [-b BULK_BYTES] [--python] [--compare LUASOCK2]
#                      [--quick] [--c-only] [--workers]
#
# For 50 and 1,000 connections doing 64-byte ping-pong it prints requests/s
# and the server's CPU time per request (utime+stime from /proc/PID/stat
# over the measured interval), each with its ratio to the C server of the
# same round; then the server memory per idle connection (VmRSS growth with
# 10,000 idle connections / 10,000) and the bulk throughput (1 GiB echoed
# over one connection).  --python adds an asyncio server for reference;
# --compare adds echo.lua under another luasock binary ("alt": a change
# measured against the current build in the same interleaved rounds);
# --quick is a smoke run of a few seconds (numbers meaningless); --c-only
# leaves luasock out (to check the tools alone); --workers adds echo.lua
# with 2 worker processes ("w2", socket.run{workers = 2}: the CPU of all
# its processes counts) on CPUs 0 and 2 when there are 3 CPUs or more (else
# both on CPU 0), and compares its CPU per request with "lua"'s (target:
# within 1.1x).
set -u

here=$(cd "$(dirname "$0")" && pwd)
build=build
rounds=5 secs=4 idle=10000 bulk=$((1 << 30)) warmup=1
conns_list="50 1000" python=0 clua=1 alt="" workers=0
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then build=$1; shift; fi
while [ $# -gt 0 ]; do
  case $1 in
    -r) rounds=$2; shift ;;
    -d) secs=$2; shift ;;
    -n) idle=$2; shift ;;
    -b) bulk=$2; shift ;;
    --python) python=1 ;;
    --compare) alt=$2; shift ;;
    --c-only) clua=0 ;;
    --workers) workers=1 ;;
    --quick) rounds=1 secs=0.5 warmup=0.2 idle=200 bulk=$((16 << 20)) conns_list="50 200" ;;
    *) echo "usage: $0 [BUILD_DIR] [-r rounds] [-d secs] [-n idle] [-b bytes] [--python] [--compare luasock2] [--quick] [--c-only] [--workers]" >&2
       exit 2 ;;
  esac
  shift
done

build=$(cd "$build" 2>/dev/null && pwd) || { echo "no build directory" >&2; exit 2; }
ECHO_C=$build/bench/echo_server
LOADGEN=$build/bench/loadgen
LUASOCK=$build/luasock
for f in "$ECHO_C" "$LOADGEN"; do
  [ -x "$f" ] || { echo "missing $f: build first (cmake --build $build)" >&2; exit 2; }
done
servers="c"
if [ $clua = 1 ]; then
  [ -x "$LUASOCK" ] || { echo "missing $LUASOCK" >&2; exit 2; }
  servers="$servers lua"
fi
if [ -n "$alt" ]; then
  [ -x "$alt" ] || { echo "missing $alt" >&2; exit 2; }
  servers="$servers alt"
fi
if [ $workers = 1 ]; then
  [ -x "$LUASOCK" ] || { echo "missing $LUASOCK" >&2; exit 2; }
  servers="$servers w2"
fi
if [ $python = 1 ]; then
  PYTHON=$(python3 -c 'import sys; print(sys.executable)') || exit 2
  servers="$servers py"
fi

# Pin only where there are two CPUs to pin to.
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_server="taskset -c 0" pin_load="taskset -c 1"
else
  pin_server="" pin_load=""
  echo "warning: fewer than 2 CPUs (or no taskset): nothing pinned" >&2
fi
# Two workers get a CPU each where the load generator keeps CPU 1 to itself.
pin_workers=$pin_server
if [ -n "$pin_server" ] && [ "$(nproc)" -ge 3 ]; then pin_workers="taskset -c 0,2"; fi
need=$((idle + 200))
ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt "$need" ]; then
  echo "warning: ulimit -n is $(ulimit -n); idle test reduced" >&2
  idle=$(( $(ulimit -n) - 200 ))
fi

tmp=$(mktemp -d)
spid="" sfd=""
cleanup() {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
  jobs -p | xargs -r kill 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server KIND: start it pinned, learn its pid (spid) and port (sport)
# from the address line it prints (5 s at most).
start_server() {
  rm -f "$tmp/out"; mkfifo "$tmp/out"
  case $1 in
    c)   $pin_server "$ECHO_C" 0 >"$tmp/out" 2>>"$tmp/$1.err" & ;;
    lua) $pin_server "$LUASOCK" "$here/echo.lua" 0 >"$tmp/out" 2>>"$tmp/$1.err" & ;;
    alt) $pin_server "$alt" "$here/echo.lua" 0 >"$tmp/out" 2>>"$tmp/$1.err" & ;;
    w2)  $pin_workers "$LUASOCK" "$here/echo.lua" 0 65536 echo 2 >"$tmp/out" 2>>"$tmp/$1.err" & ;;
    py)  $pin_server "$PYTHON" "$here/echo.py" 0 >"$tmp/out" 2>>"$tmp/$1.err" & ;;
  esac
  spid=$!
  exec {sfd}<"$tmp/out"
  local line=""
  read -r -t 5 -u "$sfd" line
  sport=${line##*:}
  case $sport in
    ''|*[!0-9]*) echo "server $1 did not start: '$line'" >&2; cat "$tmp/$1.err" >&2; exit 1 ;;
  esac
  # The load generator counts the server's descriptors from its start:
  # the workers' "worker ready" lines say the supervisor's forks are over.
  if [ "$1" = w2 ]; then read -r -t 10 -u "$sfd" line && read -r -t 10 -u "$sfd" line; fi
}

stop_server() {
  if ! kill -0 "$spid" 2>/dev/null; then
    echo "server died during the run" >&2; cat "$tmp"/*.err >&2; exit 1
  fi
  kill "$spid"; wait "$spid" 2>/dev/null
  exec {sfd}<&-
  spid=""
}

# field LINE KEY: the value of KEY=... in LINE
field() { local v=${1##* $2=}; echo "${v%% *}"; }

# load KIND MODE ARGS...: run the load generator against a fresh KIND
# server; its result line goes to $line.  (The server is started in this
# shell, not in a $(...) subshell, so that the EXIT trap can kill it.)
load() {
  local kind=$1; shift
  start_server "$kind"
  line=$($pin_load "$LOADGEN" "$1" "$sport" "${@:2}" -s "$spid" </dev/null) || {
    echo "loadgen failed against $kind" >&2; cat "$tmp/$kind.err" >&2; exit 1; }
  stop_server
  line=$(echo "$line" | grep -E '^(ping|bulk|idle) ')
}

declare -A R   # R[metric,kind,conns,round]

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "" }'; }
# best le|ge: the lowest (le) or highest (ge) of the numbers on stdin
best() { tr ' ' '\n' | grep -v '^$' | sort -g | if [ "$1" = ge ]; then tail -1; else head -1; fi; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2];
  else { m = sprintf("%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2); sub(/\.?0+$/, "", m); print m } }'; }

# One round of everything, servers in the order given.
round() {
  local r=$1; shift
  local kind c
  for c in $conns_list; do
    for kind in "$@"; do
      load "$kind" ping -c "$c" -d "$secs" -w "$warmup"
      R[rps,$kind,$c,$r]=$(field "$line" rps)
      R[cpu,$kind,$c,$r]=$(field "$line" cpu_us_per_req)
      R[p50,$kind,$c,$r]=$(field "$line" p50_us)
      R[p99,$kind,$c,$r]=$(field "$line" p99_us)
    done
    for kind in $servers; do   # C first, then each with its ratios to C
      printf 'round %d  %-5s %5d conns  %7s req/s%s  %6s us CPU/req%s  p50 %6s us  p99 %6s us\n' \
        "$r" "$kind" "$c" "${R[rps,$kind,$c,$r]}" "$(vs_c rps "$kind" "$c" "$r")" \
        "${R[cpu,$kind,$c,$r]}" "$(vs_c cpu "$kind" "$c" "$r")" \
        "${R[p50,$kind,$c,$r]}" "${R[p99,$kind,$c,$r]}"
    done
  done
  for kind in "$@"; do
    load "$kind" bulk -b "$bulk"
    R[bulk,$kind,0,$r]=$(field "$line" mib_s)
    R[bcpu,$kind,0,$r]=$(awk -v c="$(field "$line" server_cpu_s)" -v b="$bulk" \
      'BEGIN { printf "%.3f", c * 1073741824 / b }')
    load "$kind" idle -c "$idle" -t 0
    R[idle,$kind,0,$r]=$(field "$line" bytes_per_conn)
  done
  for kind in $servers; do
    printf 'round %d  %-5s bulk %7s MiB/s%s %6s CPU s/GiB%s  idle %5s B/conn (%d conns)\n' \
      "$r" "$kind" "${R[bulk,$kind,0,$r]}" "$(vs_c bulk "$kind" 0 "$r")" \
      "${R[bcpu,$kind,0,$r]}" "$(vs_c bcpu "$kind" 0 "$r")" "${R[idle,$kind,0,$r]}" "$idle"
  done
}

# vs_c METRIC KIND CONNS ROUND: " (1.23x)", KIND's value over C's in that
# round; blanks for C itself, so that the columns line up.
vs_c() {
  if [ "$2" = c ]; then echo "         "; return; fi
  local x; x=$(ratio "${R[$1,$2,$3,$4]}" "${R[$1,c,$3,$4]}")
  printf ' (%5sx)' "${x:-n/a}"
}

# summary_row LABEL METRIC CONNS AGG [TARGET CMP]: per server, AGG "med"
# is the median over the rounds with the median of the per-round ratios
# to C; "best" is the lowest value (the highest for CMP ge), the one least
# disturbed by whatever else runs on the machine, with the ratio of bests.
# The verdict against TARGET is given for each luasock server.
summary_row() {
  local label=$1 m=$2 c=$3 agg=$4 target=${5:-} cmp=${6:-le} kind r vals ratios v rt
  local verdicts=""
  printf '%-30s' "$label"
  for kind in $servers; do
    vals="" ratios=""
    for r in $(seq "$rounds"); do
      vals+=" ${R[$m,$kind,$c,$r]}"
      ratios+=" $(ratio "${R[$m,$kind,$c,$r]}" "${R[$m,c,$c,$r]}")"
    done
    if [ "$agg" = med ]; then
      v=$(echo "$vals" | median) rt=$(echo "$ratios" | median)
    else
      v=$(echo "$vals" | best "$cmp")
      rt=$(ratio "$v" "$(for r in $(seq "$rounds"); do echo "${R[$m,c,$c,$r]}"; done | best "$cmp")")
    fi
    [ -z "$rt" ] && rt=n/a
    if [ "$kind" = c ]; then printf ' %10s' "$v"; continue; fi
    printf ' %10s %7s' "$v" "$([ "$rt" = n/a ] && echo n/a || echo "${rt}x")"
    case $kind in lua|alt|w2) ;; *) continue ;; esac
    [ -z "$target" ] && continue
    local x=$rt; [ "$m" = idle ] && x=$(awk -v b="$v" 'BEGIN { printf "%.2f", b / 1024 }')
    verdicts+=" $kind:$(awk -v v="$x" -v t="$target" -v c="$cmp" 'BEGIN {
      if (v == "n/a") print "?"; else if (c == "le" ? v + 0 <= t : v + 0 >= t) print "met"; else print "NOT-met" }')"
  done
  if [ -n "$verdicts" ]; then
    if [ "$m" = idle ]; then printf '   target <= %s KiB/conn:%s' "$target" "$verdicts"
    else printf '   target %s %s:%s' "$([ "$cmp" = le ] && echo '<=' || echo '>=')" "$target" "$verdicts"; fi
  fi
  echo
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(uname -r)"
echo "server pinned to CPU 0, load generator to CPU 1; $rounds rounds of ${secs}s (+${warmup}s warm-up)"
declare -A legend=([c]="tests/bench/echo_server.c" [lua]="echo.lua under $LUASOCK"
  [w2]="echo.lua under $LUASOCK, 2 workers (${pin_workers:-unpinned})" [alt]="echo.lua under $alt"
  [py]="echo.py under asyncio")
for kind in $servers; do printf '  %-5s %s\n' "$kind" "${legend[$kind]}"; done
t0=$(date +%s)
for r in $(seq "$rounds"); do
  order=$servers
  [ $((r % 2)) = 0 ] && order=$(echo "$servers" | tr ' ' '\n' | tac | tr '\n' ' ')
  round "$r" $order
done

echo
echo "summary over $rounds rounds: median (ratio: median of the per-round server/C ratios),"
echo "and best (least disturbed round of each server; ratio of the bests)"
printf '%-30s' ""; for kind in $servers; do
  if [ "$kind" = c ]; then printf ' %10s' C; else printf ' %10s %7s' "$kind" ratio; fi
done; echo
for c in $conns_list; do
  tgt=""; [ "$c" = 50 ] && tgt=1.20; [ "$c" = 1000 ] && tgt=1.25
  summary_row "req/s, $c conns" rps "$c" med
  summary_row "p99 us, $c conns" p99 "$c" med
  summary_row "CPU us/req, $c conns" cpu "$c" med "$tgt" le
  summary_row "CPU us/req, $c conns, best" cpu "$c" best "$tgt" le
done
summary_row "B/idle conn ($idle conns)" idle 0 med 1.5 le
summary_row "bulk MiB/s" bulk 0 med 0.90 ge
summary_row "bulk MiB/s, best" bulk 0 best 0.90 ge
summary_row "bulk server CPU s/GiB" bcpu 0 med
summary_row "bulk server CPU s/GiB, best" bcpu 0 best
if [ $workers = 1 ]; then   # w2's CPU per request over one process's, round by round
  for c in $conns_list; do
    rs=""
    for r in $(seq "$rounds"); do rs+=" $(ratio "${R[cpu,w2,$c,$r]}" "${R[cpu,lua,$c,$r]}")"; done
    rt=$(echo "$rs" | median)
    printf '%-30s %7sx   target <= 1.10: %s\n' "CPU us/req w2 / lua, $c conns" "$rt" \
      "$(awk -v v="$rt" 'BEGIN { print (v != "n/a" && v + 0 <= 1.10) ? "met" : "NOT-met" }')"
  done
fi
echo "total time: $(( $(date +%s) - t0 )) s"

#!/bin/sh
# Build the fuzz targets (build.sh) and run each for SECONDS, in a
# temporary directory (unix sockets bound there), with a fresh corpus
# seeded from tests/fuzz/corpus/TARGET when it exists.  Prints the runs
# of each; exits non-zero at the first crash, whose input libFuzzer saves
# as crash-* in the working directory (printed).
#   tests/fuzz/run.sh BUILD [SECONDS [TARGET...]]
# For hours by hand, in a directory of your choosing:
#   tests/fuzz/build.sh build /tmp/fz && cd /tmp/fz && mkdir -p corpus_api &&
#   nice ./fuzz_api -max_total_time=7200 -rss_limit_mb=4096 corpus_api
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd) seconds=${2:-5}
shift $(( $# > 1 ? 2 : 1 ))
targets=${*:-addr stream api}
"$src/tests/fuzz/build.sh" "$build" "$build/fuzz"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
for t in $targets; do
  mkdir -p "corpus_$t"
  [ -d "$src/tests/fuzz/corpus/$t" ] && cp "$src/tests/fuzz/corpus/$t"/* "corpus_$t"/ 2>/dev/null || true
  if ! "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
       "corpus_$t" > "log_$t" 2>&1; then
    cat "log_$t"
    for c in crash-* leak-* timeout-* oom-*; do
      [ -e "$c" ] && { echo "fuzz_$t: input $c:"; od -c "$c" | head -20; }
    done
    exit 1
  fi
  echo "fuzz_$t: $(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "log_$t") runs in ${seconds} s, no crash"
done

#!/bin/sh
# Run the whole test suite twice: on the normal build (build/) and on the
# AddressSanitizer + UBSan build (build-asan/). Ends with one line,
# "N passed, N failed", summing both passes; exits non-zero on a failure.
set -u
cd "$(dirname "$0")/.."
tools/deps.sh || exit 1
jobs=$(nproc)
passed=0; failed=0
for pass in "build" "build-asan -DLUASOCK_SANITIZE=ON"; do
  set -- $pass
  dir=$1; shift
  echo "== $dir"
  if ! { cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug "$@" >/dev/null &&
         cmake --build "$dir" -j "$jobs" >/dev/null; }; then
    echo "build of $dir failed"; failed=$((failed + 1)); continue
  fi
  log="$dir/ctest.log"
  ctest --test-dir "$dir" --output-on-failure -j 2 2>&1 | tee "$log"
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -n 1)
  total=$(echo "$line" | sed -E 's/.* out of ([0-9]+).*/\1/')
  bad=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed.*/\1/')
  if [ -z "$line" ]; then failed=$((failed + 1)); continue; fi
  passed=$((passed + total - bad)); failed=$((failed + bad))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/bin/sh
# compare.py on a machine without git (a fresh minimal Debian, or the code
# from a tarball): it ended with a FileNotFoundError after the whole run
# instead of printing its table.  Here PATH is a temporary directory of
# links to every program of PATH but git; the quickest workload runs (C
# and luasock alone), the table's header must say "unknown commit" and
# the table must print.
#
# Usage: nogit.sh BUILD
set -eu
build=$1
bench=$(dirname "$0")
bin=$(mktemp -d /tmp/luasock-nogit.XXXXXX)
trap 'rm -rf "$bin"' EXIT
# One ln per directory: a name already linked (from a directory earlier in
# PATH) is refused, as PATH's lookup would take the first.
IFS=:
for dir in $PATH; do
  ln -s "$dir"/* "$bin" 2>/dev/null || true
done
unset IFS
rm -f "$bin/git"
if PATH=$bin command -v git >/dev/null; then
  echo "nogit: git is still on the PATH made without it"; exit 1
fi
out=$(PATH=$bin python3 "$bench/compare.py" "$build" --quick --strict --workloads startup --peers none)
echo "$out"
# The header is wrapped: its lines are joined before the match.
if ! echo "$out" | tr '\n' ' ' | grep -q ", commit unknown commit ("; then
  echo "nogit: the header does not say 'unknown commit'"; exit 1
fi
if ! echo "$out" | grep -q "^| startup[ ,][^|]* | [0-9]"; then
  echo "nogit: no startup row with a figure"; exit 1
fi
echo "nogit: ok"

#!/bin/sh
# Install, from Debian's packages, whatever luasock needs to build, to run
# its test suite and its interoperability peers, and is not installed yet.
# Works as root (apt-get) and as a normal user (sudo apt-get); quick and
# silent when everything is already there.  Packages named as arguments
# are installed too.
#
# Besides the build: lua5.4 (host_spec compares with it), openssl (the TLS
# tests make their certificates and run s_server/s_client), python3 (pty
# driver, peers), nc, socat, curl, wrk, redis-tools (the scripts' peers),
# iproute2, util-linux, procps (ip, unshare, setpriv, sysctl, kill),
# strace and valgrind (tests that count syscalls or check memory), clang
# and libclang-rt-dev (the fuzz targets: libFuzzer's runtime), netbase
# (/etc/services, which service names such as "http" need), groff-base and
# mandoc (they check the man page), build-essential, dpkg-dev, debhelper,
# fakeroot and lintian (they build and check the Debian packages:
# dpkg-buildpackage refuses to start without build-essential), lua-socket
# (LuaSocket: lua5.4 keeps its "socket" beside luasock's module), and
# lua-luv, lua-cqueues, nginx-light and redis-server: the peers of
# tests/bench/compare.py, which bench_compare_smoke runs (with LuaSocket,
# Python, wrk and redis-tools).  Where systemd runs, nginx's and redis'
# packages start their services (ports 80 and 6379); nothing here uses them.
set -e
PACKAGES="gcc cmake make pkg-config liblua5.4-dev lua5.4 lua-busted
  libreadline-dev libssl-dev openssl python3 netcat-openbsd socat curl wrk redis-tools
  iproute2 util-linux procps strace valgrind netbase clang libclang-rt-dev
  groff-base mandoc build-essential dpkg-dev debhelper fakeroot lintian lua-socket
  lua-luv lua-cqueues nginx-light redis-server $*"

# Tests resolve "localhost", which must not need DNS: an installed Debian
# names it in /etc/hosts, a bare debootstrap root has no /etc/hosts; there
# nss-myhostname (added to /etc/nsswitch.conf by its package) answers.
grep -qs '^[^#]*[[:space:]]localhost\([[:space:]]\|$\)' /etc/hosts ||
  PACKAGES="$PACKAGES libnss-myhostname"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "Installing:$missing"
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing

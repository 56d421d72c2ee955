#!/bin/sh
# Install, from Debian's packages, whatever luasock needs to build, to run
# its test suite and its interoperability peers, and is not installed yet.
# Works as root (apt-get) and as a normal user (sudo apt-get); quick and
# silent when everything is already there.
set -e
PACKAGES="gcc cmake make pkg-config liblua5.4-dev lua5.4 lua-busted
  libreadline-dev python3 netcat-openbsd socat curl wrk redis-tools
  iproute2 util-linux procps"

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

#!/bin/sh
# tests/bench/deps.sh - install the benchmark's peers and load tools from
# Debian's packages, besides what tools/deps.sh installs for the tests:
# LuaSocket, luv, cqueues, nginx-light, redis-server.  On a machine with
# systemd, nginx's and redis' packages start their services (ports 80 and
# 6379); the benchmark does not use them: stop them if you like.
exec "$(dirname "$0")/../../tools/deps.sh" lua-socket lua-luv lua-cqueues \
  nginx-light redis-server

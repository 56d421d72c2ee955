#!/bin/sh
# tests/bench/peers/nginx.sh - peer: nginx (Debian's nginx-light), one
# worker process and no master, answering every request with the
# benchmark's fixed 13-byte body.  Usage: nginx.sh PORT DIR: PORT not 0
# (nginx prints no address: the driver picks the port), DIR an empty
# directory for its files, which the caller removes.  Runs in the
# foreground as one process.
set -e
port=$1 dir=$2
cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
error_log stderr error;
pid $dir/nginx.pid;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $dir;
  proxy_temp_path $dir;
  fastcgi_temp_path $dir;
  uwsgi_temp_path $dir;
  scgi_temp_path $dir;
  keepalive_requests 1000000000;
  server {
    listen 127.0.0.1:$port backlog=1024;
    location / { default_type text/plain; return 200 "Hello, World!"; }
  }
}
CONF
exec nginx -p "$dir" -c "$dir/nginx.conf"

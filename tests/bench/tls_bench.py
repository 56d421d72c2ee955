#!/usr/bin/env python3
"""TLS benchmark: luasock beside nginx (with ssl) and Python's asyncio ssl
server, same certificate (EC P-256), TLS 1.3.  Not a test: the numbers
mean something only on a quiet machine.

    python3 tests/bench/tls_bench.py [--luasock PATH] [--time SECONDS] [--bulk MIB]

For each server installed: TLS 1.3 handshakes per second of *server* CPU
(openssl s_time -new, one short GET per connection; the server's
utime+stime from /proc), and bulk throughput over one TLS connection (curl
downloading BULK MiB; MB/s of wall time and MB per server CPU second).
Targets (issue 11): handshake CPU at most 1.1x nginx's, bulk at least
0.9x nginx's.  --time 1 --bulk 1 is the smoke run.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d + "/key.pem",
                    "-out", d + "/cert.pem", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return d + "/cert.pem", d + "/key.pem"


def wait_port(port, proc, limit=10):
    end = time.time() + limit
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited: %s" % proc.stderr.read().decode())
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server not listening on %d" % port)


def start_luasock(args, d, cert, key, bulk):
    p = subprocess.Popen([args.luasock, HERE + "/tls_server.lua", cert, key, str(bulk)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    port = int(re.search(rb":(\d+)$", p.stdout.readline().strip()).group(1))
    return p, port


def start_python(args, d, cert, key, bulk):
    p = subprocess.Popen([sys.executable, HERE + "/tls_asyncio.py", cert, key, str(bulk)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    port = int(re.search(rb":(\d+)$", p.stdout.readline().strip()).group(1))
    return p, port


def start_nginx(args, d, cert, key, bulk):
    port = free_port()
    with open(d + "/big", "wb") as f:
        f.truncate(bulk)
    conf = """daemon off; master_process off; worker_processes 1;
error_log stderr error; pid %(d)s/nginx.pid;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path %(d)s; proxy_temp_path %(d)s;
  fastcgi_temp_path %(d)s; uwsgi_temp_path %(d)s; scgi_temp_path %(d)s;
  server { listen 127.0.0.1:%(port)d ssl backlog=1024;
    ssl_certificate %(cert)s; ssl_certificate_key %(key)s; ssl_protocols TLSv1.3;
    ssl_session_tickets off; ssl_session_cache off;
    location = /big { alias %(d)s/big; default_type application/octet-stream; }
    location / { default_type text/plain; return 200 "Hello, World!"; } } }
""" % {"d": d, "port": port, "cert": cert, "key": key}
    with open(d + "/nginx.conf", "w") as f:
        f.write(conf)
    p = subprocess.Popen(["nginx", "-p", d, "-c", d + "/nginx.conf"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_port(port, p)
    return p, port


def handshakes(port, seconds, pid):
    c0 = cpu_seconds(pid)
    out = subprocess.run(["openssl", "s_time", "-connect", "127.0.0.1:%d" % port, "-new",
                          "-tls1_3", "-time", str(seconds), "-www", "/"],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    cpu = cpu_seconds(pid) - c0
    m = re.search(r"(\d+) connections in [\d.]+s", out)
    n = int(m.group(1)) if m else 0
    return n, cpu


def bulk(port, size, pid):
    c0 = cpu_seconds(pid)
    t0 = time.time()
    out = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{size_download}",
                          "https://127.0.0.1:%d/big" % port],
                         capture_output=True, text=True, timeout=300).stdout
    wall = time.time() - t0
    return int(out or 0), wall, cpu_seconds(pid) - c0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--luasock", default=os.path.join(HERE, "../../build/luasock"))
    ap.add_argument("--time", type=int, default=10)
    ap.add_argument("--bulk", type=int, default=256, help="MiB")
    args = ap.parse_args()
    size = args.bulk << 20
    servers = [("luasock", start_luasock), ("python asyncio", start_python)]
    if shutil.which("nginx"):
        servers.insert(0, ("nginx", start_nginx))
    else:
        print("nginx not installed (apt-get install nginx-light): skipped")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        for name, start in servers:
            p, port = start(args, d, cert, key, size)
            try:
                n, hcpu = handshakes(port, args.time, p.pid)
                got, wall, bcpu = bulk(port, size, p.pid)
            finally:
                p.kill()
                p.wait()
            if got != size:
                print("%s: bulk transfer got %d of %d bytes" % (name, got, size))
            rows.append((name, n, hcpu, got, wall, bcpu))
    print("%-16s %10s %9s %14s %10s %12s" % ("server", "handshakes", "CPU s",
                                            "per CPU s", "bulk MB/s", "MB/CPU s"))
    for name, n, hcpu, got, wall, bcpu in rows:
        print("%-16s %10d %9.2f %14.0f %10.1f %12.1f" % (
            name, n, hcpu, n / hcpu if hcpu else 0, got / wall / 1e6 if wall else 0,
            got / bcpu / 1e6 if bcpu else 0))


if __name__ == "__main__":
    main()

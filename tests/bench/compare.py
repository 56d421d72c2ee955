#!/usr/bin/env python3
"""tests/bench/compare.py - luasock beside its peers, in one run.

    python3 tests/bench/compare.py BUILD [--rounds N] [--secs S] [--quick]
                                   [--only NAME,...] [--workloads W,...] [--strict]

BUILD is a build directory of luasock made without sanitizers (Release or
RelWithDebInfo); its bench/ holds the C echo server and the load
generator.  Every server is started fresh for each measurement, pinned to
CPU 0 while the load tool runs on CPU 1, and the servers take turns within
each round (the order reversed every other round), so a noisy moment hurts
all of them alike.  Each cell of the final table is the median over the
rounds, with the median of the per-round ratios to the round's baseline:
the C epoll server for echo and HTTP, redis-server for RESP, bare lua5.4
for startup.  The issue's targets for luasock are checked at the end.

Workloads (the exact commands are in the functions below):
  pp1, pp50, pp1000  64-byte ping-pong over 1, 50, 1,000 connections
                     (loadgen ping): req/s, server CPU us per request, p99
  bulk               1 GiB echoed over one connection (loadgen bulk):
                     MiB/s and server CPU seconds per GiB
  relay              the same 1 GiB through scripts/proxy.lua (socket.relay)
                     to the C echo server: the proxy's CPU seconds per GiB
                     against the C echo server's own for the same bytes
  idle               10,000 idle connections (loadgen idle): server RSS
                     growth per connection
  http               wrk -t1 -c50 on a keep-alive "Hello, World!": req/s,
                     server CPU us per request
  resp               redis-benchmark -c 50 (PING inline and bulk, SET,
                     GET): req/s, server CPU us per request
  startup            a process that starts the interpreter with its socket
                     library loaded and exits: ms of wall time

The peers are our own short servers in tests/bench/peers/ on the stacks
Debian packages (Python's asyncio and selectors, LuaSocket, luv, cqueues)
plus nginx and redis-server: tests/bench/deps.sh installs them (they are
not in tools/deps.sh: nginx's and redis' packages start system services
on a machine with systemd).  A peer that is not installed is left out.
Nothing else should run on the machine meanwhile.  Progress goes to stderr, the
table to stdout.
"""
import argparse
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(BENCH))
PEERS = os.path.join(BENCH, "peers")
PY = "/usr/bin/python3"   # Debian's, not a version manager's shim

# name: (modes, argv); argv may use {mode}, {port} (then the driver picks
# the port: the server prints nothing) and {tmp}.  Servers with port 0
# print their address on the first line that ends in ":PORT".
SERVERS = {
    "c": ("echo http relay", ["{build}/bench/echo_server", "0", "{mode}"]),
    "luasock": ("echo http", ["{luasock}", BENCH + "/echo.lua", "0", "65536", "{mode}"]),
    "luasock-stream": ("http", ["{luasock}", ROOT + "/scripts/http_hello.lua", "127.0.0.1", "0"]),
    "luasock-proxy": ("relay", ["{luasock}", ROOT + "/scripts/proxy.lua", "127.0.0.1", "{port}",
                                "127.0.0.1", "{target}"]),
    "luasock-redis": ("resp", ["{luasock}", ROOT + "/scripts/redis_server.lua", "127.0.0.1", "0"]),
    "redis": ("resp", ["redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
                       "--logfile", ""]),
    "nginx": ("http", [PEERS + "/nginx.sh", "{port}", "{tmp}"]),
    "py-asyncio": ("echo http", [PY, PEERS + "/py_asyncio.py", "{mode}", "0"]),
    "py-selectors": ("echo http", [PY, PEERS + "/py_selectors.py", "{mode}", "0"]),
    "lua-socket": ("echo http", ["lua5.4", PEERS + "/lua_socket.lua", "{mode}", "0"]),
    "lua-luv": ("echo http", ["lua5.4", PEERS + "/lua_luv.lua", "{mode}", "0"]),
    "lua-cqueues": ("echo http", ["lua5.4", PEERS + "/lua_cqueues.lua", "{mode}", "0"]),
}

# Servers started through a wrapper script: the program the wrapper runs,
# without which the server is not installed.
WRAPPED = {"nginx": "nginx"}

# Startup: whole processes, each loading its socket library.
STARTUP = {
    "lua5.4": ["lua5.4", "-e", ""],
    "luasock": ["{luasock}", "-e", "require'socket'"],
    "luasock-bare": ["{luasock}", "-e", ""],
    "lua-socket": ["lua5.4", "-e", "require'socket'"],
    "lua-luv": ["lua5.4", "-e", "require'luv'"],
    "lua-cqueues": ["lua5.4", "-e", "require'cqueues.socket'"],
    "py-asyncio": [PY, "-c", "import asyncio"],
}

BASELINE = {"echo": "c", "http": "c", "resp": "redis", "startup": "lua5.4", "relay": "c"}

# (workload, metric): (label, lower is better, target for luasock or None)
METRICS = [
    ("pp1", "rps", "req/s, 1 conn", False, None),
    ("pp1", "cpu", "CPU us/req, 1 conn", True, None),
    ("pp50", "rps", "req/s, 50 conns", False, None),
    ("pp50", "cpu", "CPU us/req, 50 conns", True, None),
    ("pp1000", "rps", "req/s, 1,000 conns", False, 0.95),
    ("pp1000", "cpu", "CPU us/req, 1,000 conns", True, 1.10),
    ("pp1000", "p99", "p99 us, 1,000 conns", True, None),
    ("bulk", "mib_s", "bulk MiB/s", False, 1.0),
    ("bulk", "cpu_gib", "bulk CPU s/GiB", True, 1.15),
    ("relay", "mib_s", "relay MiB/s", False, None),
    ("relay", "cpu_gib", "relay CPU s/GiB", True, 1.10),
    ("idle", "bytes", "B per idle conn", True, None),
    ("http", "rps", "HTTP req/s", False, None),
    ("http", "cpu", "HTTP CPU us/req", True, None),
    ("resp", "rps", "RESP req/s", False, None),
    ("resp", "cpu", "RESP CPU us/req", True, None),
    ("startup", "ms", "startup ms", True, 1.15),
]
IDLE_TARGET = 1024   # bytes per idle connection, luasock with a task each


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def pin(cpu):
    """taskset prefix for one CPU, or none on a single-CPU machine."""
    if os.cpu_count() >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process, in a session of its own, pinned to CPU 0 (or cpu)."""

    def __init__(self, argv, opts, cpu=0):
        self.tmp = tempfile.mkdtemp(prefix="bench-")
        port = free_port() if any("{port}" in a for a in argv) else 0
        subst = {"mode": opts.mode, "port": str(port), "tmp": self.tmp,
                 "build": opts.build, "luasock": opts.luasock,
                 "target": str(getattr(opts, "target", 0))}
        argv = [a.format(**subst) for a in argv]
        self.err = open(os.path.join(self.tmp, "stderr"), "w+")
        self.proc = subprocess.Popen(pin(cpu) + argv, stdout=subprocess.PIPE, stderr=self.err,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid
        self.port = port or self._read_port()
        if port:
            self._wait_listening()
        # taskset execs the server: the pid is the server's own.

    def _read_port(self, limit=10):
        deadline = time.monotonic() + limit
        line = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                line = self.proc.stdout.readline()
                m = re.search(rb":(\d+)\s*$", line)
                if m:
                    return int(m.group(1))
                if not line:
                    break
        self.fail("printed no address (%r)" % line)

    def _wait_listening(self, limit=10):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)   # a foreign server: nothing to wait on but its port
        self.fail("is not listening on port %d" % self.port)

    def fail(self, why):
        self.err.seek(0)
        said = self.err.read()[-2000:]   # stop() closes the file
        self.stop()
        raise RuntimeError("server %s: %s" % (why, said))

    def cpu(self):
        """utime + stime of the server so far, seconds."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        self.err.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def fields(line):
    return {k: float(v) for k, v in re.findall(r"(\w+)=(-?[\d.]+)", line)}


def loadgen(opts, srv, args):
    out = subprocess.run(pin(1) + [opts.build + "/bench/loadgen", args[0], str(srv.port)]
                         + args[1:] + ["-s", str(srv.pid)], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, timeout=300)
    line = next((l for l in out.stdout.splitlines() if l.startswith(args[0] + " ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError("loadgen %s: %s" % (args[0], (out.stdout + out.stderr)[-500:]))
    return fields(line)


def ping(conns):
    def run(opts, srv):
        f = loadgen(opts, srv, ["ping", "-c", str(conns), "-d", str(opts.secs),
                                "-w", str(opts.warmup)])
        return {"rps": f["rps"], "cpu": f["cpu_us_per_req"], "p99": f["p99_us"]}
    return run


def bulk(opts, srv):
    f = loadgen(opts, srv, ["bulk", "-b", str(opts.bulk)])
    return {"mib_s": f["mib_s"], "cpu_gib": f["server_cpu_s"] * (1 << 30) / opts.bulk}


def idle(opts, srv):
    f = loadgen(opts, srv, ["idle", "-c", str(opts.idle), "-t", "0"])
    return {"bytes": f["bytes_per_conn"]}


def timed_cpu(srv, argv, limit):
    """Run a load tool on CPU 1; its stdout and the server's CPU seconds."""
    cpu0 = srv.cpu()
    out = subprocess.run(pin(1) + argv, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=limit)
    if out.returncode != 0:
        raise RuntimeError("%s: %s" % (argv[0], (out.stdout + out.stderr)[-500:]))
    return out.stdout, srv.cpu() - cpu0


def http(opts, srv):
    secs = max(1, round(opts.secs))
    out, cpu = timed_cpu(srv, ["wrk", "-t1", "-c50", "-d%ds" % secs,
                               "http://127.0.0.1:%d/" % srv.port], secs + 60)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    if "Socket errors" in out or "Non-2xx" in out or total == 0:
        raise RuntimeError("wrk reported errors: " + out[-500:])
    return {"rps": float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1)),
            "cpu": cpu * 1e6 / total}


def resp(opts, srv):
    tests = "ping_inline,ping_mbulk,set,get"
    t0 = time.monotonic()
    out, cpu = timed_cpu(srv, ["redis-benchmark", "-h", "127.0.0.1", "-p", str(srv.port),
                               "-c", "50", "-n", str(opts.resp), "-t", tests, "--csv"], 300)
    secs = time.monotonic() - t0
    total = opts.resp * len(tests.split(","))
    if len(re.findall(r'^"(PING|SET|GET)', out, re.M)) != len(tests.split(",")):
        raise RuntimeError("redis-benchmark: " + out[-500:])
    return {"rps": total / secs, "cpu": cpu * 1e6 / total}


def startup(opts, argv):
    argv = [a.format(luasock=opts.luasock) for a in argv]
    times = []
    for _ in range(opts.starts):
        t0 = time.perf_counter()
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return {"ms": statistics.median(times) * 1000}


WORKLOADS = {
    "pp1": ("echo", ping(1)), "pp50": ("echo", ping(50)), "pp1000": ("echo", ping(1000)),
    "bulk": ("echo", bulk), "relay": ("relay", bulk), "idle": ("echo", idle),
    "http": ("http", http),
    "resp": ("resp", resp), "startup": ("startup", None),
}


def measure(opts, workload, name):
    mode, fn = WORKLOADS[workload]
    if mode == "startup":
        return startup(opts, STARTUP[name])
    opts.mode = "echo" if mode == "relay" else mode
    target = None
    if mode == "relay" and name != BASELINE[mode]:
        # The relay's target, the C echo server, runs beside the load
        # tool: only the relay's CPU is measured.
        target = Server(SERVERS["c"][1], opts, cpu=1)
        opts.target = target.port
    try:
        srv = Server(SERVERS[name][1], opts)
    except BaseException:
        if target:
            target.stop()
        raise
    try:
        res = fn(opts, srv)
    except BaseException:
        srv.stop()
        raise
    finally:
        if target:
            target.stop()
    died = srv.proc.poll()
    srv.stop()
    if died is not None:
        raise RuntimeError("server died (status %s)" % died)
    return res


# What a server needs besides its own file: a program, or a Lua module.
def installed(name, opts, cache={}):
    if name not in cache:
        argv = STARTUP.get(name) or SERVERS[name][1]
        if argv[0] == "lua5.4" and name in STARTUP:
            probe = STARTUP[name]   # loads the peer's library
        else:
            probe = None
        prog = argv[0].format(build=opts.build, luasock=opts.luasock)
        ok = shutil.which(prog) is not None or os.access(prog, os.X_OK)
        if ok and name in WRAPPED:
            ok = shutil.which(WRAPPED[name]) is not None
        if ok and probe:
            ok = subprocess.run(probe, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode == 0
        cache[name] = ok
    return cache[name]


def servers_for(workload, opts):
    mode = WORKLOADS[workload][0]
    names = STARTUP if mode == "startup" else \
        [n for n, (modes, _) in SERVERS.items() if mode in modes.split()]
    base = BASELINE[mode]
    return [n for n in names if (n == base or not opts.only or n in opts.only)
            and installed(n, opts)]


def run_rounds(opts, workloads):
    """results[(workload, name)] = list of per-round dicts (or error strings)."""
    results = {}
    for r in range(1, opts.rounds + 1):
        for w in workloads:
            names = servers_for(w, opts)
            if r % 2 == 0:
                names.reverse()
            for name in names:
                try:
                    res = measure(opts, w, name)
                except (RuntimeError, OSError, subprocess.SubprocessError, AttributeError) as e:
                    text = str(e).strip()
                    res = "fail: " + (text.splitlines()[0][:160] if text else type(e).__name__)
                results.setdefault((w, name), []).append(res)
                log("round %d %-8s %-15s %s" % (r, w, name, res))
    return results


def cell(results, w, metric, name, base):
    """(median value, median of per-round ratios to base) or None."""
    own = results.get((w, name), [])
    ref = results.get((w, base), [])
    vals = [x[metric] for x in own if isinstance(x, dict) and x.get(metric, -1) >= 0]
    if not vals:
        return None
    ratios = [a[metric] / b[metric] for a, b in zip(own, ref)
              if isinstance(a, dict) and isinstance(b, dict) and b.get(metric, 0) > 0]
    return statistics.median(vals), statistics.median(ratios) if ratios else None


def fmt(v):
    return "%.0f" % v if v >= 100 else "%.2f" % v if v < 10 else "%.1f" % v


def report(opts, results, workloads):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    print("Machine: %d CPUs (%s), Linux %s; server on CPU 0, load on CPU 1; "
          "%d rounds of %g s" % (os.cpu_count(), cpu, os.uname().release, opts.rounds, opts.secs))
    print("Cells: median over the rounds (median ratio to the baseline in the same round).\n")
    verdicts = []
    for w in workloads:
        names = servers_for(w, opts)
        base = BASELINE[WORKLOADS[w][0]]
        rows = [m for m in METRICS if m[0] == w]
        print("| %s | %s |" % (w, " | ".join(names)))
        print("|---|%s" % ("---:|" * len(names)))
        for _, metric, label, lower, target in rows:
            cells = []
            for n in names:
                c = cell(results, w, metric, n, base)
                if c is None:
                    errs = [x for x in results.get((w, n), []) if isinstance(x, str)]
                    cells.append("fail" if errs else "")
                    continue
                v, ratio = c
                cells.append(fmt(v) if n == base or ratio is None else
                             "%s (%.2fx)" % (fmt(v), ratio))
                if n.startswith("luasock") and target is not None and ratio is not None:
                    ok = ratio <= target if lower else ratio >= target
                    verdicts.append("%s: %.2fx, target %s %.2fx: %s" % (
                        label, ratio, "<=" if lower else ">=", target, "met" if ok else "NOT met"))
                if n == "luasock" and metric == "bytes":
                    ok = v <= IDLE_TARGET
                    verdicts.append("%s: %.0f B, target <= %d B: %s" % (
                        label, v, IDLE_TARGET, "met" if ok else "NOT met"))
            print("| %s | %s |" % (label, " | ".join(cells)))
        print()
    for (w, n), rs in sorted(results.items()):
        for x in rs:
            if isinstance(x, str):
                print("%s %s: %s" % (w, n, x))
                break
    if verdicts:
        print("\nluasock's targets:")
        for v in verdicts:
            print("- " + v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=4)
    ap.add_argument("--quick", action="store_true", help="a smoke run: numbers meaningless")
    ap.add_argument("--only", default="", help="servers besides the baselines")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 if any measurement failed (for the smoke test)")
    opts = ap.parse_args()
    opts.build = os.path.abspath(opts.build)
    opts.luasock = opts.build + "/luasock"
    opts.only = set(filter(None, opts.only.split(",")))
    opts.warmup, opts.bulk, opts.idle, opts.resp, opts.starts = 0.5, 1 << 30, 10000, 200000, 200
    if opts.quick:
        opts.rounds, opts.secs, opts.warmup = 1, 0.3, 0.1
        opts.bulk, opts.idle, opts.resp, opts.starts = 16 << 20, 200, 2000, 5
    workloads = [w for w in opts.workloads.split(",") if w]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        ap.error("unknown workload(s): " + ",".join(unknown))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < opts.idle + 200:
        opts.idle = max(100, hard - 200)
        log("RLIMIT_NOFILE is %d: idle test reduced to %d connections" % (hard, opts.idle))
    t0 = time.monotonic()
    results = run_rounds(opts, workloads)
    report(opts, results, workloads)
    print("\n(%.0f s)" % (time.monotonic() - t0))
    failed = any(isinstance(x, str) for rs in results.values() for x in rs)
    sys.exit(1 if opts.strict and failed else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""tests/bench/compare.py - luasock beside its peers: README's speed table.

    python3 tests/bench/compare.py BUILD [--rounds N] [--time S]
            [--workloads W,...] [--peers P,...] [--quick] [--strict]
            [--readme README.md]

BUILD is a build directory of luasock made without sanitizers (Release or
RelWithDebInfo); its bench/ holds the C echo server and the load
generator.  Prints to stdout one Markdown table, ready for README's
"Speed and memory" section: a row per workload, a column per server, each
cell the median over the rounds of the server's ratio to the C column's
server measured in the same round (the C column itself in absolute
figures), then issue 13's target for luasock and whether it is met.
--readme FILE also puts that table between the two "compare.py" marker
comments of FILE.  Progress, the expected duration first, goes to stderr.

Every server is started fresh for each measurement, pinned to CPU 0 while
the load tool runs on CPU 1, and in each round the servers of a workload
take turns (in reverse order every other round), so a noisy moment hurts
them alike.  Workloads (the exact commands are in the functions below):
  pp1, pp50, pp1000  64-byte ping-pong over 1, 50, 1,000 connections
                     (loadgen ping): requests/s, server CPU per request
  workers            pp1000 against echo.lua under socket.run{workers = 2}
                     (both workers on CPU 0 of a 2-CPU machine)
  bulk               1 GiB echoed over one connection (loadgen bulk):
                     MiB/s and server CPU seconds per GiB
  relay              the same 1 GiB through scripts/proxy.lua (socket.relay)
                     to a C echo server on the load's CPU: the proxy's CPU
                     per GiB against the C echo server's own
  relayc             the same relay, against a relay in C that splices the
                     same way (relay_server.c): what the kernel's share is
  http               wrk -t1 -c50 on a keep-alive "Hello, World!"
  resp               redis-benchmark -c 50 (PING inline and bulk, SET,
                     GET) against scripts/redis_server.lua; C: redis-server
  idle               10,000 idle connections (loadgen idle): the server's
                     RSS growth per connection, in bytes
  startup            a whole process that loads its socket library and
                     exits; C: bare lua5.4
The peers are our own short servers in tests/bench/peers/ on the stacks
Debian packages (LuaSocket, luv, cqueues, Python's asyncio and selectors)
plus nginx-light and redis-server, all installed by tools/deps.sh.  A peer
or tool that is missing shows as "-" with a note; a measurement that fails
shows as "fail" with its error.  Nothing else should run on the machine.
"""
import argparse
import datetime
import functools
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
import textwrap
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(BENCH))
PEERS = os.path.join(BENCH, "peers")
PY = "/usr/bin/python3"   # Debian's, not a version manager's shim

# Server processes; argv may use {mode} (echo or http), {port} (then the
# driver picks the port: the server prints nothing), {tmp}, {target} (the
# relay's C echo server).  Servers with port 0 print their address on the
# first line that ends in ":PORT".
SERVERS = {
    "c": ["{build}/bench/echo_server", "0", "{mode}"],
    "c-relay": ["{build}/bench/relay_server", "{target}"],
    "luasock": ["{luasock}", BENCH + "/echo.lua", "0", "65536", "{mode}"],
    "luasock-w2": ["{luasock}", BENCH + "/echo.lua", "0", "65536", "echo", "2"],
    "luasock-proxy": ["{luasock}", ROOT + "/scripts/proxy.lua", "127.0.0.1", "{port}",
                      "127.0.0.1", "{target}"],
    "luasock-redis": ["{luasock}", ROOT + "/scripts/redis_server.lua", "127.0.0.1", "0"],
    "redis": ["redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
              "--logfile", ""],
    "nginx": [PEERS + "/nginx.sh", "{port}", "{tmp}"],
    "lua-socket": ["lua5.4", PEERS + "/lua_socket.lua", "{mode}", "0"],
    "lua-luv": ["lua5.4", PEERS + "/lua_luv.lua", "{mode}", "0"],
    "lua-cqueues": ["lua5.4", PEERS + "/lua_cqueues.lua", "{mode}", "0"],
    "py-asyncio": [PY, PEERS + "/py_asyncio.py", "{mode}", "0"],
    "py-selectors": [PY, PEERS + "/py_selectors.py", "{mode}", "0"],
}

# The servers that relay to a C echo server ({target}).
RELAYS = ("luasock-proxy", "c-relay")

# Servers that print lines after their address once they are ready, and
# how many: the load generator counts the descriptors of the server's
# processes from its start, so they must be settled by then.
READY_LINES = {"luasock-w2": 2}

# Startup: whole processes, each loading its socket library.
STARTUP = {
    "C": ["lua5.4", "-e", ""],
    "luasock": ["{luasock}", "-e", "require'socket'"],
    "lua-socket": ["lua5.4", "-e", "require'socket'"],
    "lua-luv": ["lua5.4", "-e", "require'luv'"],
    "lua-cqueues": ["lua5.4", "-e", "require'cqueues.socket'"],
    "py-asyncio": [PY, "-c", "import asyncio"],
    "py-selectors": [PY, "-c", "import selectors"],
}

# What must be installed for a server or a load tool: a command that
# succeeds only then, and the Debian package that brings it.
NEEDS = {
    "lua-socket": (["lua5.4", "-e", "require'socket'"], "lua-socket"),
    "lua-luv": (["lua5.4", "-e", "require'luv'"], "lua-luv"),
    "lua-cqueues": (["lua5.4", "-e", "require'cqueues.socket'"], "lua-cqueues"),
    "py-asyncio": ([PY, "-c", "import asyncio"], "python3"),
    "py-selectors": ([PY, "-c", "import selectors"], "python3"),
    "nginx": (["nginx", "-v"], "nginx-light"),
    "redis": (["redis-server", "--version"], "redis-server"),
    "wrk": (["sh", "-c", "command -v wrk"], "wrk"),
    "redis-benchmark": (["redis-benchmark", "--version"], "redis-tools"),
}

# The table's columns, in order: C is each workload's baseline.
COLUMNS = ["C", "luasock", "lua-socket", "lua-luv", "lua-cqueues", "py-asyncio",
           "py-selectors", "nginx"]
HEADINGS = {"C": "C (baseline)", "luasock": "**luasock**"}
ECHO = {"C": "c", "luasock": "luasock", "lua-socket": "lua-socket", "lua-luv": "lua-luv",
        "lua-cqueues": "lua-cqueues", "py-asyncio": "py-asyncio",
        "py-selectors": "py-selectors"}

# Pairs (workload, column) not measured, and why.
NOT_APPLICABLE = {
    ("idle", "lua-socket"): "LuaSocket's select() takes at most 1,024 descriptors",
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def pin(cpus):
    """taskset prefix for a CPU list, or none on a single-CPU machine."""
    if os.cpu_count() >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", cpus]
    return []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process, in a session of its own, pinned to cpus."""

    def __init__(self, argv, opts, mode="echo", cpus="0", target=0, ready=0):
        self.tmp = tempfile.mkdtemp(prefix="bench-")
        port = free_port() if any("{port}" in a for a in argv) else 0
        subst = {"mode": mode, "port": str(port), "tmp": self.tmp, "build": opts.build,
                 "luasock": opts.luasock, "target": str(target)}
        argv = [a.format(**subst) for a in argv]
        self.err = open(os.path.join(self.tmp, "stderr"), "w+")
        # taskset execs the server: the pid is the server's own.
        self.proc = subprocess.Popen(pin(cpus) + argv, stdout=subprocess.PIPE, stderr=self.err,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     bufsize=0)
        self.pid = self.proc.pid
        self.port = port or self._read_port()
        if port:
            self._wait_listening()
        for _ in range(ready):
            self._read_line("ready")

    def _read_line(self, what, limit=10):
        """The next line of the server's stdout (10 s at most); unbuffered,
        so that a line read leaves the next one to select()."""
        r, _, _ = select.select([self.proc.stdout], [], [], limit)
        line = self.proc.stdout.readline() if r else b""
        if not line:
            self.fail("printed no %s line" % what)
        return line

    def _read_port(self):
        while True:
            m = re.search(rb":(\d+)\s*$", self._read_line("address"))
            if m:
                return int(m.group(1))

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


# ---- the workloads: each measures one running server ----------------------

def fields(line):
    return {k: float(v) for k, v in re.findall(r"(\w+)=(-?[\d.]+)", line)}


def loadgen(opts, srv, args):
    out = subprocess.run(pin("1") + [opts.build + "/bench/loadgen", args[0], str(srv.port)]
                         + args[1:] + ["-s", str(srv.pid)], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, timeout=300)
    line = next((l for l in out.stdout.splitlines() if l.startswith(args[0] + " ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError("loadgen %s: %s" % (args[0], (out.stdout + out.stderr)[-500:]))
    return fields(line)


def ping(conns):
    def run(opts, srv):
        f = loadgen(opts, srv, ["ping", "-c", str(conns), "-d", str(opts.time),
                                "-w", str(opts.warmup)])
        return {"rps": f["rps"], "cpu": f["cpu_us_per_req"]}
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
    out = subprocess.run(pin("1") + argv, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=limit)
    if out.returncode != 0:
        raise RuntimeError("%s: %s" % (argv[0], (out.stdout + out.stderr)[-500:]))
    return out.stdout, srv.cpu() - cpu0


def http(opts, srv):
    secs = max(1, round(opts.time))
    # A reply later than wrk's --timeout counts as an error: 10 s, not
    # its 2 s, so that only a server that stops answering fails (on a
    # loaded machine a slow peer took longer).
    out, cpu = timed_cpu(srv, ["wrk", "-t1", "-c50", "-d%ds" % secs, "--timeout", "10s",
                               "http://127.0.0.1:%d/" % srv.port], secs + 60)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.findall(r"^\s*(Socket errors.*|Non-2xx.*)$", out, re.M)
    if errors or total == 0:
        raise RuntimeError("wrk: %s" % ("; ".join(errors) or "no request answered"))
    return {"rps": float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1)),
            "cpu": cpu * 1e6 / total}


RESP_TESTS = "ping_inline,ping_mbulk,set,get"


def resp(opts, srv):
    tests = RESP_TESTS.split(",")
    t0 = time.monotonic()
    out, cpu = timed_cpu(srv, ["redis-benchmark", "-h", "127.0.0.1", "-p", str(srv.port),
                               "-c", "50", "-n", str(opts.resp), "-t", RESP_TESTS, "--csv"],
                         300)
    secs = time.monotonic() - t0
    total = opts.resp * len(tests)
    if len(re.findall(r'^"(PING|SET|GET)', out, re.M)) != len(tests):
        raise RuntimeError("redis-benchmark: " + out[-500:])
    return {"rps": total / secs, "cpu": cpu * 1e6 / total}


def startup(opts, argv):
    """Median wall time of whole runs: opts.starts at most, and as many
    as fit in opts.start_secs (at least 10)."""
    argv = [a.format(luasock=opts.luasock) for a in argv]
    times = []
    t_end = time.monotonic() + opts.start_secs
    while len(times) < opts.starts and (len(times) < 10 or time.monotonic() < t_end):
        t0 = time.perf_counter()
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return {"ms": statistics.median(times) * 1000}


class Workload:
    """mode: the servers' mode; run(opts, server) measures; cast: column ->
    server; tools: the load tools it needs; cost(opts, column): its
    expected seconds per measurement (for the duration printed first)."""

    def __init__(self, mode, run, cast, cost, tools=()):
        self.mode, self.run, self.cast, self.cost, self.tools = mode, run, cast, cost, tools


def timed_cost(opts, col):
    return opts.warmup + opts.time + 1


def bulk_cost(opts, col):   # the slowest stacks move ~250 MiB/s
    return 0.5 + opts.bulk / (250 if col.startswith("lua-") else 900) / (1 << 20)


WORKLOADS = {
    "pp1": Workload("echo", ping(1), ECHO, timed_cost),
    "pp50": Workload("echo", ping(50), ECHO, timed_cost),
    "pp1000": Workload("echo", ping(1000), ECHO, timed_cost),
    "workers": Workload("echo", ping(1000), {"C": "c", "luasock": "luasock-w2"}, timed_cost),
    "bulk": Workload("echo", bulk, ECHO, bulk_cost),
    "relay": Workload("echo", bulk, {"C": "c", "luasock": "luasock-proxy"}, bulk_cost),
    "relayc": Workload("echo", bulk, {"C": "c-relay", "luasock": "luasock-proxy"}, bulk_cost),
    "http": Workload("http", http, dict(ECHO, nginx="nginx"), timed_cost, ("wrk",)),
    "resp": Workload("resp", resp, {"C": "redis", "luasock": "luasock-redis"},
                     lambda opts, col: 1 + 4 * opts.resp / 60000, ("redis-benchmark",)),
    "idle": Workload("echo", idle, ECHO, lambda opts, col: 1 + opts.idle / 6000),
    "startup": Workload("startup", startup, {c: c for c in STARTUP},
                        lambda opts, col: opts.start_secs + 0.3),
}


class Row:
    """One line of the table: a workload's metric.  label: its text, where
    {bulk}, {idle} and {wcpus} stand for this run's sizes and CPUs (see
    label_of); unit: the C column's; lower: lower is better; target:
    luasock's, as a ratio to C, in bytes (unit "B"), or as a ratio to
    luasock's own pp1000 figure (workers); absolute: cells are values, not
    ratios."""

    def __init__(self, workload, metric, label, unit, lower, target=None, absolute=False):
        self.workload, self.metric, self.label, self.unit = workload, metric, label, unit
        self.lower, self.target, self.absolute = lower, target, absolute


ROWS = [
    Row("pp1", "cpu", "ping-pong 64 B, 1 connection: CPU per request", "µs", True),
    Row("pp50", "cpu", "ping-pong, 50 connections: CPU per request", "µs", True),
    Row("pp1000", "rps", "ping-pong, 1,000 connections: requests/s", "/s", False, 0.95),
    Row("pp1000", "cpu", "ping-pong, 1,000 connections: CPU per request", "µs", True, 1.10),
    Row("workers", "cpu", "ping-pong, 1,000 connections, `socket.run{{workers = 2}}` on "
        "CPU {wcpus}: CPU per request", "µs", True, 1.10),
    Row("bulk", "mib_s", "bulk echo, {bulk} over 1 connection: MiB/s", "MiB/s", False, 1.0),
    Row("bulk", "cpu_gib", "bulk echo: CPU per GiB", "s", True, 1.15),
    Row("relay", "cpu_gib", "relay through `scripts/proxy.lua`: CPU per GiB "
        "(C: the echo server's own)", "s", True, 1.10),
    Row("relayc", "cpu_gib", "relay: CPU per GiB against a C relay that splices the same "
        "way (`tests/bench/relay_server.c`)", "s", True),
    Row("http", "cpu", "HTTP, `wrk -t1 -c50`: CPU per request", "µs", True),
    Row("resp", "cpu", "RESP, `redis-benchmark -c 50`: CPU per request (C: redis-server)",
        "µs", True),
    Row("idle", "bytes", "memory per idle connection, {idle} idle (bytes)", "B", True,
        1024, absolute=True),
    Row("startup", "ms", "startup, socket library loaded (C: bare `lua5.4`)", "ms", True,
        1.15),
]


# ---- running the rounds -----------------------------------------------------

def workers_cpus():
    """The CPUs of socket.run{workers = 2}: the load tool keeps CPU 1 to itself."""
    return "0,2" if os.cpu_count() >= 3 else "0"


def measure(opts, w, col):
    wl = WORKLOADS[w]
    name = wl.cast[col]
    if wl.mode == "startup":
        return startup(opts, STARTUP[name])
    target = None
    if name in RELAYS:
        # A relay's target, the C echo server, runs beside the load tool:
        # only the relay's CPU is measured.
        target = Server(SERVERS["c"], opts, cpus="1")
    try:
        cpus = workers_cpus() if name == "luasock-w2" else "0"
        srv = Server(SERVERS[name], opts, wl.mode, cpus, target.port if target else 0,
                     READY_LINES.get(name, 0))
        try:
            res = wl.run(opts, srv)
            died = srv.proc.poll()
        finally:
            srv.stop()
    finally:
        if target:
            target.stop()
    if died is not None:
        raise RuntimeError("server died (status %s)" % died)
    return res


@functools.lru_cache(maxsize=None)
def missing(key):
    """None when a server or tool is installed, else a note saying what to install."""
    if key not in NEEDS:
        return None
    probe, package = NEEDS[key]
    try:
        ok = subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return None if ok else "%s is not installed (Debian package %s; tools/deps.sh " \
                           "installs it)" % (key, package)


def plan(opts):
    """[(workload, [columns to measure])] and notes[(workload, column)] for
    the cells not measured."""
    todo, notes = [], {}
    for w in opts.workloads:
        wl = WORKLOADS[w]
        cols = []
        for col in opts.columns:
            if col not in wl.cast:
                continue
            why = NOT_APPLICABLE.get((w, col))
            for key in wl.tools + (wl.cast[col],):
                why = why or missing(key)
            if why:
                notes[(w, col)] = why
            else:
                cols.append(col)
        todo.append((w, cols))
    return todo, notes


def round_cost(opts, todo):
    """The expected seconds of one round."""
    return sum(WORKLOADS[w].cost(opts, c) for w, cols in todo for c in cols)


def run_rounds(opts, todo):
    """results[(workload, column)] = per-round dicts, or error strings."""
    results = {}
    round_secs = round_cost(opts, todo)
    t0 = time.monotonic()
    for r in range(1, opts.rounds + 1):
        for w, cols in todo:
            for col in (cols if r % 2 else cols[::-1]):
                try:
                    res = measure(opts, w, col)
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    text = str(e).strip()
                    res = "fail: " + (text.splitlines()[0][:160] if text else type(e).__name__)
                results.setdefault((w, col), []).append(res)
                log("round %d/%d %-8s %-13s %s" % (r, opts.rounds, w, col, res))
        left = (opts.rounds - r) * round_secs
        if left:
            log("round %d done in %.0f s; about %.0f min left"
                % (r, time.monotonic() - t0, left / 60))
    return results


# ---- the table ----------------------------------------------------------------

def fmt(v):
    if v >= 1000:
        return "{:,.0f}".format(v)
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v


def per_round(results, w, col, metric):
    return [x.get(metric) if isinstance(x, dict) else None for x in results.get((w, col), [])]


def ratios(own, ref):
    """Per-round ratios of two series of values (None where one is missing)."""
    return [a / b for a, b in zip(own, ref) if a is not None and b]


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def label_of(opts, row):
    size = opts.bulk / (1 << 30)
    return row.label.format(
        bulk="%g GiB" % size if size >= 1 else "%g MiB" % (opts.bulk / (1 << 20)),
        idle="{:,}".format(opts.idle), wcpus=workers_cpus())


def duration(secs):
    return "%.0f s" % secs if secs < 120 else "%.0f min" % (secs / 60)


def cell(results, row, col):
    """The cell's text, or None when nothing was measured."""
    own = per_round(results, row.workload, col, row.metric)
    if col == "C" or row.absolute:
        v = median_or_none(own)
        if v is None:
            return None
        return "{:,.0f} {}".format(v, row.unit) if row.absolute else \
            "%s %s" % (fmt(v), row.unit)
    if median_or_none(own) is None:
        return None
    r = median_or_none(ratios(own, per_round(results, row.workload, "C", row.metric)))
    return "n/a" if r is None else "%.2f×" % r   # n/a: the baseline failed or measured 0


def verdict(results, row):
    """(target text, result text) for luasock's target on this row."""
    if row.target is None:
        return "", ""
    cmp = "≤" if row.lower else "≥"
    # workers: against luasock's own pp1000 figure of the same round
    base = ("pp1000", "luasock") if row.workload == "workers" else (row.workload, "C")
    if row.unit == "B":
        target = "%s {:,} B".format(row.target) % cmp
        value = median_or_none(per_round(results, row.workload, "luasock", row.metric))
        shown = None if value is None else "{:,.0f} B".format(value)
    else:
        target = "%s %.2f×%s" % (cmp, row.target, " one worker's" if base[1] == "luasock" else "")
        value = median_or_none(ratios(per_round(results, row.workload, "luasock", row.metric),
                                      per_round(results, base[0], base[1], row.metric)))
        shown = None if value is None else "%.2f×" % value
    if value is None:
        return target, "not measured"
    ok = value <= row.target if row.lower else value >= row.target
    return target, ("met (%s)" if ok else "**not met** (%s)") % shown


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "unknown CPU")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo")
                if l.startswith("MemTotal:")), 0) / (1 << 20)
    try:
        with open("/etc/debian_version") as f:
            distro = "Debian " + f.read().strip()
    except OSError:
        distro = "not Debian"
    lua = subprocess.run(["lua5.4", "-v"], capture_output=True, text=True).stdout.split()
    return "%d CPUs (%s), %.0f GiB, Linux %s, %s, %s" % (
        os.cpu_count(), cpu, mem, os.uname().release, distro,
        " ".join(lua[:2]) if lua else "no lua5.4")


def build_kind(build):
    """The build's CMAKE_BUILD_TYPE, and whether it has sanitizers."""
    kind, sanitized = "?", False
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    kind = line.split("=", 1)[1].strip() or "no build type"
                if line.startswith("LUASOCK_SANITIZE:") and line.strip().endswith("=ON"):
                    sanitized = True
    except OSError:
        pass
    return kind + (" with sanitizers" if sanitized else "")


def commit():
    def git(*args):   # "" without git or outside a checkout (a tarball on a fresh machine)
        try:
            return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True,
                                  text=True).stdout.strip()
        except OSError:
            return ""
    head = git("rev-parse", "--short", "HEAD") or "unknown commit"
    # README.md changes with each --readme run and measures nothing.
    changed = git("status", "--porcelain", "-uno", "--", ".", ":!README.md")
    return head + (" with local changes" if changed else "")


def table(opts, results, notes, started, load, secs):
    rows = [r for r in ROWS if r.workload in opts.workloads]
    cols = [c for c in opts.columns if any(c in WORKLOADS[r.workload].cast for r in rows)]
    out = [textwrap.fill("Measured %s UTC, commit %s (%s build), with `%s`: %s; load average %.2f "
           "at the start. Server on CPU 0, load tool on CPU 1; %d interleaved round%s "
           "(%s). Each cell is the median of the server's per-round ratios to the "
           "baseline's figure in the same round (C column: its own median); lower is "
           "better except for requests/s and MiB/s." % (
               started.strftime("%Y-%m-%d %H:%M"), commit(), build_kind(opts.build),
               opts.command, machine(), load, opts.rounds, "" if opts.rounds == 1 else "s",
               duration(secs)), 74, break_long_words=False, break_on_hyphens=False),
           "",
           "| workload | %s | target | result |" % " | ".join(HEADINGS.get(c, c) for c in cols),
           "| --- |%s --- | --- |" % (" ---: |" * len(cols))]
    footnotes = []
    for row in rows:
        cells = []
        for col in cols:
            if col not in WORKLOADS[row.workload].cast:
                cells.append("")
                continue
            why = notes.get((row.workload, col))
            errors = [x for x in results.get((row.workload, col), []) if isinstance(x, str)]
            text = None if why else cell(results, row, col)
            if text is None:
                why = why or (errors[0][len("fail: "):] if errors else "no figure")
                mark = "–" if (row.workload, col) in notes else "fail"
                if why not in footnotes:
                    footnotes.append(why)
                text = "%s<sup>%d</sup>" % (mark, footnotes.index(why) + 1)
            cells.append(text)
        out.append("| %s | %s | %s | %s |" % ((label_of(opts, row), " | ".join(cells))
                                               + verdict(results, row)))
    if footnotes:
        out.append("")
        out += ["<sup>%d</sup> %s" % (i + 1, f) for i, f in enumerate(footnotes)]
    return "\n".join(out) + "\n"


MARK_BEGIN = "<!-- compare.py: begin -->"
MARK_END = "<!-- compare.py: end -->"


def write_readme(path, text):
    """Put text between the markers of path; False if they are not there."""
    with open(path) as f:
        old = f.read()
    i, j = old.find(MARK_BEGIN), old.find(MARK_END)
    if i < 0 or j < i:
        return False
    with open(path, "w") as f:
        f.write(old[:i + len(MARK_BEGIN)] + "\n" + text + old[j:])
    return True


def failures(opts, results):
    """What --strict refuses: a failed measurement, or a row without luasock's figure."""
    bad = ["%s %s: %s" % (w, c, x) for (w, c), rs in results.items() for x in rs
           if isinstance(x, str)]
    bad += ["%s: no luasock figure" % label_of(opts, row) for row in ROWS
            if row.workload in opts.workloads
            and median_or_none(per_round(results, row.workload, "luasock", row.metric)) is None]
    return bad


def command_line(args):
    """How this run was started, for the table's header: paths relative to
    the project, without --readme (which does not change what is measured)."""
    shown, skip = [], False
    for a in args:
        if skip or a.startswith("--readme"):
            skip = a == "--readme"   # its file comes next
            continue
        shown.append(os.path.relpath(a, ROOT) if a.startswith("/") else a)
    return " ".join(["python3 tests/bench/compare.py"] + shown)


def options():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", help="a build directory (Release or RelWithDebInfo)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    ap.add_argument("--time", type=float, default=4,
                    help="seconds of each ping-pong and HTTP measurement (4)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="a subset of " + ",".join(WORKLOADS))
    ap.add_argument("--peers", default=",".join(COLUMNS[2:]),
                    help="columns besides C and luasock: a subset of %s, or none"
                    % ",".join(COLUMNS[2:]))
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run of every part: 1 round, tiny sizes, figures meaningless")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 if a measurement failed or luasock has no figure")
    ap.add_argument("--readme", metavar="FILE",
                    help="also put the table between FILE's compare.py markers")
    opts = ap.parse_args()
    opts.command = command_line(sys.argv[1:])
    opts.build = os.path.abspath(opts.build)
    opts.luasock = opts.build + "/luasock"
    opts.workloads = [w for w in opts.workloads.split(",") if w]
    peers = [] if opts.peers == "none" else [p for p in opts.peers.split(",") if p]
    bad = [w for w in opts.workloads if w not in WORKLOADS] + \
        [p for p in peers if p not in COLUMNS[2:]]
    if bad:
        ap.error("unknown workload or peer: " + ",".join(bad))
    opts.columns = [c for c in COLUMNS if c in ("C", "luasock") or c in peers]
    opts.warmup, opts.bulk, opts.idle = 0.5, 1 << 30, 10000
    opts.resp = int(25000 * opts.time)   # requests per redis-benchmark test
    opts.starts, opts.start_secs = 200, 2
    if opts.quick:
        opts.rounds, opts.time, opts.warmup = 1, 0.3, 0.1
        opts.bulk, opts.idle, opts.resp, opts.starts = 16 << 20, 200, 2000, 5
        opts.start_secs = 0
    for tool in ("echo_server", "relay_server", "loadgen"):
        if not os.access("%s/bench/%s" % (opts.build, tool), os.X_OK):
            ap.error("no %s/bench/%s: build first (cmake --build %s)"
                     % (opts.build, tool, opts.build))
    return opts


def main():
    opts = options()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < opts.idle + 200:
        opts.idle = max(100, hard - 200)
        log("RLIMIT_NOFILE is %d: idle test reduced to %d connections" % (hard, opts.idle))
    if "with sanitizers" in build_kind(opts.build) or "Debug" in build_kind(opts.build):
        log("warning: %s is a %s build: figures not representative"
            % (opts.build, build_kind(opts.build)))
    todo, notes = plan(opts)
    for why in sorted(set(notes.values())):
        log("left out: " + why)
    expected = opts.rounds * round_cost(opts, todo)
    log("expected run time: about %s (%d measurements in each of %d rounds)"
        % (duration(expected), sum(len(cols) for _, cols in todo), opts.rounds))
    started, load = datetime.datetime.now(datetime.timezone.utc), os.getloadavg()[0]
    t0 = time.monotonic()
    results = run_rounds(opts, todo)
    text = table(opts, results, notes, started, load, time.monotonic() - t0)
    sys.stdout.write(text)
    log("took %s (expected %s)" % (duration(time.monotonic() - t0), duration(expected)))
    if opts.readme and not write_readme(opts.readme, text):
        log("%s has no '%s' ... '%s' markers: not written" % (opts.readme, MARK_BEGIN, MARK_END))
        sys.exit(2)
    bad = failures(opts, results)
    for b in bad:
        log("failed: " + b)
    sys.exit(1 if opts.strict and bad else 0)


if __name__ == "__main__":
    main()

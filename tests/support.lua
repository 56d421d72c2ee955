-- tests/support.lua: what the specs share, so that each test reads as what
-- it checks.  Sockets of every kind with a 2 s timeout, connected pairs and
-- listeners, whether ::1 works, descriptor flags, temporary files, and
-- child programs run with a time limit and their words quoted for the shell.
--
--   local support = require "tests.support"
--   local a, b = support.pair("tcp")        -- client, accepted end
--   local c = support.start({support.LUASOCK, "scripts/echo.lua", "127.0.0.1", "0"})
--   local host, port = c:address("listening on")
--
-- Whatever a test leaves with support.defer (temporary directories,
-- children started with support.start) is cleaned up after the test by
-- tests/helpers.lua, before it counts the open descriptors; so a test
-- needs no finally for them and keeps its one finally for itself.  What a
-- before_each defers lasts until that test's after_each has run.
local socket = require "socket"
local child = require "tests.peers.child"

local M = {}
M.TIMEOUT = 2   -- seconds: the timeout of every socket made here

--------------------------------------------------------------------------
-- After the test

-- What was deferred, in order.  Each entry is { fn, when }: "test" if it
-- was deferred while a test ran (it runs when the test ends), "setup" if
-- before (in a before_each: it runs once that test's after_each is over,
-- when the next test starts or the file ends, so that both descriptor
-- counts of the test see it), "done" once its test ended.
local deferred = {}
local running = false   -- whether a test body runs now

-- Run fn after the current test (last deferred, first run).
function M.defer(fn)
  deferred[#deferred + 1] = { fn, running and "test" or "setup" }
end

-- Run the deferred entries that match(when), last first, and drop them;
-- raises the first error once all ran.
local function run_deferred(match)
  local first
  for i = #deferred, 1, -1 do
    local fn, when = table.unpack(deferred[i])
    if match(when) then
      table.remove(deferred, i)
      local ok, err = pcall(fn)
      first = first or (not ok and err)
    end
  end
  if first then error(first, 0) end
end

-- Called by tests/helpers.lua when a test starts: what the previous
-- test's before_each deferred runs now.
function M.test_started()
  running = true
  run_deferred(function(when) return when == "done" end)
end

-- Called by tests/helpers.lua when a test ends: what it deferred runs.
function M.test_ended()
  running = false
  for _, d in ipairs(deferred) do
    if d[2] == "setup" then d[2] = "done" end
  end
  run_deferred(function(when) return when == "test" end)
end

-- Called by tests/helpers.lua when a spec file ends: everything left runs.
function M.file_ended()
  running = false
  run_deferred(function() return true end)
end

--------------------------------------------------------------------------
-- Files

function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- The contents of path, or nil if it cannot be opened.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- Quote one word for the shell.
M.quote = child.quote

-- A shell command line running argv (a list of words) as it is.
function M.command(argv)
  local words = {}
  for i, w in ipairs(argv) do words[i] = M.quote(w) end
  return table.concat(words, " ")
end

-- A new private directory (mode 700), removed with its contents after the
-- test.
function M.temp_dir()
  local p = assert(io.popen("mktemp -d /tmp/luasock-test.XXXXXX"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  M.defer(function() os.execute("rm -rf " .. M.quote(dir)) end)
  return dir
end

local test_dir   -- the current test's directory for temp_path, made on demand

-- A path named name (a fresh one if omitted) in a private directory of the
-- current test; nothing is created there.
local serial = 0
function M.temp_path(name)
  if not test_dir then
    test_dir = M.temp_dir()
    M.defer(function() test_dir = nil end)
  end
  serial = serial + 1
  return test_dir .. "/" .. (name or ("f" .. serial))
end

-- A temporary file holding text; returns its path.
function M.temp_file(text, name)
  return M.write_file(M.temp_path(name), text)
end

-- A name in the abstract unix namespace no other run uses.
local PID = assert(io.open("/proc/self/stat")):read("n")
function M.abstract_name(tag)
  serial = serial + 1
  return ("\0luasock-test-%s-%d-%d"):format(tag or "s", PID, serial)
end

--------------------------------------------------------------------------
-- What the system must provide

-- What a test may need from the system (read by the C library, so its
-- absence shows only as a puzzling resolver error): a check, and what to
-- say when it fails.
local SYSTEM = {
  services = {
    check = function()
      return (("\n" .. (M.read_file("/etc/services") or "")):find("\nhttp%s+80/tcp")) ~= nil
    end,
    missing = "/etc/services is missing or does not name http (service names need it): "
              .. "install Debian's netbase (tools/deps.sh does)",
  },
  localhost = {
    check = function()
      for _, ai in ipairs(socket.getaddrinfo("localhost", 0, socket.AF_INET) or {}) do
        if ai.address.host == "127.0.0.1" then return true end
      end
      return false
    end,
    missing = "\"localhost\" does not resolve to 127.0.0.1: /etc/hosts is missing or does "
              .. "not name it (a bare debootstrap root has none); tools/deps.sh installs "
              .. "libnss-myhostname, which answers for it then",
  },
}
local system_ok = {}

-- Fail the calling test with a clear message unless the system provides
-- what ("services" or "localhost"); checked once per run.
function M.needs(what)
  local need = SYSTEM[what] or error("nothing known as " .. tostring(what), 2)
  if system_ok[what] == nil then system_ok[what] = need.check() end
  if not system_ok[what] then error("this test needs the system's help: " .. need.missing, 2) end
end

--------------------------------------------------------------------------
-- Descriptors

M.O_NONBLOCK, M.O_CLOEXEC = 0x800, 0x80000   -- Linux values (octal 04000, 02000000)

-- The open-file flags of descriptor fd, from /proc/self/fdinfo.
function M.fd_flags(fd)
  local text = assert(M.read_file("/proc/self/fdinfo/" .. fd), "no descriptor " .. fd)
  return tonumber(text:match("flags:%s*(%d+)"), 8)
end

function M.is_cloexec(fd) return M.fd_flags(fd) & M.O_CLOEXEC ~= 0 end
function M.is_nonblocking(fd) return M.fd_flags(fd) & M.O_NONBLOCK ~= 0 end

-- Whether descriptor fd is open in this process.
function M.fd_open(fd)
  local f = io.open("/proc/self/fdinfo/" .. fd)
  if f then f:close() end
  return f ~= nil
end

-- How many descriptors this process has open.
function M.count_fds()
  local n = 0
  for _ in require("lfs").dir("/proc/self/fd") do n = n + 1 end
  return n
end

--------------------------------------------------------------------------
-- Sockets

-- Whether ::1 can be bound here: true, or false and why not.
function M.has_ipv6()
  if not socket.has_ipv6 then return false, "socket.has_ipv6 is false" end
  local s = assert(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
  local ok, msg = s:bind({"::1", 0})
  s:close()
  if not ok then return false, "::1 is missing: " .. tostring(msg) end
  return true
end

-- A new socket (socket.socket's arguments) with a 2 s timeout; raises if
-- it cannot be made.
function M.socket(...)
  local s = assert(socket.socket(...))
  s:settimeout(M.TIMEOUT)
  return s
end

-- Each kind: its family, its type and a fresh address to bind.
local function loopback4() return {"127.0.0.1", 0} end
local function loopback6() return {"::1", 0} end
local function path() return M.temp_path() end
local function abstract() return M.abstract_name() end
M.KINDS = {
  tcp        = { socket.AF_INET,  socket.SOCK_STREAM,    loopback4 },
  tcp6       = { socket.AF_INET6, socket.SOCK_STREAM,    loopback6 },
  udp        = { socket.AF_INET,  socket.SOCK_DGRAM,     loopback4 },
  udp6       = { socket.AF_INET6, socket.SOCK_DGRAM,     loopback6 },
  unix       = { socket.AF_UNIX,  socket.SOCK_STREAM,    path },
  unix_dgram = { socket.AF_UNIX,  socket.SOCK_DGRAM,     path },
  seqpacket  = { socket.AF_UNIX,  socket.SOCK_SEQPACKET, path },
  abstract   = { socket.AF_UNIX,  socket.SOCK_STREAM,    abstract },
  abstract_dgram = { socket.AF_UNIX, socket.SOCK_DGRAM,  abstract },
}

local function kind_of(kind)
  return M.KINDS[kind or "tcp"] or error("no socket kind " .. tostring(kind), 3)
end

-- A socket of kind (default "tcp") bound to a fresh address: 127.0.0.1 or
-- ::1 port 0, a path in the test's directory, an abstract name.  Returns
-- the socket and its address (getsockname).
function M.bound(kind)
  local k = kind_of(kind)
  local s = M.socket(k[1], k[2])
  assert(s:bind(k[3]()))
  return s, s:getsockname()
end

-- A listening socket of a stream kind (default "tcp"), and its address
-- (addr.port is the real port of a TCP one).
function M.listener(kind, backlog)
  local s, addr = M.bound(kind)
  assert(s:listen(backlog))
  return s, addr
end

-- A client connected to a new listener of kind (default "tcp"): returns
-- the listener, the client, the accepted socket and the address accept
-- returned, all open, all with a 2 s timeout.
function M.connected(kind)
  local k = kind_of(kind)
  local l, addr = M.listener(kind)
  local c = M.socket(k[1], k[2])
  assert(c:connect(addr))
  local conn, peer = assert(l:accept())
  conn:settimeout(M.TIMEOUT)
  return l, c, conn, peer
end

local SOCKETPAIRS = {
  socketpair = socket.SOCK_STREAM,
  socketpair_dgram = socket.SOCK_DGRAM,
  socketpair_seqpacket = socket.SOCK_SEQPACKET,
}

-- Two connected sockets of kind, each with a timeout (default 2 s):
--   "socketpair" (the default), "socketpair_dgram", "socketpair_seqpacket":
--     socket.socketpair of AF_UNIX;
--   a stream kind ("tcp", "tcp6", "unix", "seqpacket", "abstract"): the
--     client and the accepted socket (the listener is closed);
--   a datagram kind ("udp", "udp6", "unix_dgram", "abstract_dgram"): two
--     bound sockets, each connected to the other.
function M.pair(kind, timeout)
  kind = kind or "socketpair"
  local a, b
  if SOCKETPAIRS[kind] then
    a, b = assert(socket.socketpair(socket.AF_UNIX, SOCKETPAIRS[kind]))
  elseif kind_of(kind)[2] == socket.SOCK_DGRAM then
    local aaddr, baddr
    a, aaddr = M.bound(kind)
    b, baddr = M.bound(kind)
    assert(a:connect(baddr))
    assert(b:connect(aaddr))
  else
    local l
    l, a, b = M.connected(kind)
    l:close()
  end
  a:settimeout(timeout or M.TIMEOUT)
  b:settimeout(timeout or M.TIMEOUT)
  return a, b
end

-- Fill s's send buffer (and the peer's receive buffer) without waiting.
function M.fill(s)
  local t = s:gettimeout()
  s:settimeout(0)
  local chunk = ("x"):rep(65536)
  while true do
    local n, err, code = s:send(chunk)
    if not n then
      assert(code == socket.errno.EAGAIN, ("send: %s (errno %s)"):format(tostring(err), tostring(code)))
      break
    end
  end
  s:settimeout(t)
end

-- Read exactly n bytes from s (fewer if the stream ends first), or
-- everything until the stream ends if n is nil.
function M.recv_all(s, n)
  n = n or math.huge
  local parts, got = {}, 0
  while got < n do
    local data = assert(s:recv(math.min(n - got, 65536)))
    if data == "" then break end
    parts[#parts + 1] = data
    got = got + #data
  end
  return table.concat(parts)
end

-- n bytes where every 1000-byte block differs (its number, then filler):
-- support.blocks(n) here, and the same function in a child that runs
-- support.BLOCKS, so both sides can build and check the same data.
M.BLOCKS = [[local function blocks(n)
    local t = {}
    for i = 1, n // 1000 do t[i] = ("%07d"):format(i) .. string.char(i % 256):rep(993) end
    return table.concat(t)
  end]]
M.blocks = load(M.BLOCKS .. " return blocks")()

--------------------------------------------------------------------------
-- Tasks

M.RUN_LIMIT = 4   -- seconds: the longest socket.run of a test

-- socket.run(...), failing the test if it takes longer than limit
-- seconds, not counting the waits for a CPU (M.timed); returns what
-- socket.run returned.
function M.run_tasks_within(limit, ...)
  local took, ok, err = M.timed(socket.run, ...)
  M.assert_took(took, 0, limit)
  return ok, err
end

-- The same within M.RUN_LIMIT.
function M.run_tasks(...)
  return M.run_tasks_within(M.RUN_LIMIT, ...)
end

-- For tasks that move megabytes: an ASan build on a loaded machine needs
-- more than M.RUN_LIMIT for them.
M.BULK_RUN_LIMIT = 20

-- How many tasks have not ended: socket.tasks() where the module has it,
-- else the tasks the loop keeps alive by a registry reference (userdata
-- named luasock.task), which it drops when a task ends.
function M.tasks_left()
  if socket.tasks then
    local t = socket.tasks()
    return type(t) == "table" and #t or t
  end
  local n = 0
  for _, v in pairs(debug.getregistry()) do
    local mt = type(v) == "userdata" and getmetatable(v)
    if type(mt) == "table" and mt.__name == "luasock.task" then n = n + 1 end
  end
  return n
end

-- Cancel the tasks that have not ended and let them end (their <close>
-- variables close): what a failed test left must not run on in the next.
function M.end_tasks()
  if not socket.tasks or #socket.tasks() == 0 then return end
  for _, t in ipairs(socket.tasks()) do t:cancel() end
  socket.run()
end

-- Seconds this thread has spent runnable but waiting for a CPU (the
-- kernel's run-queue delay, /proc/thread-self/schedstat), or 0 where the
-- kernel does not count it.
function M.cpu_wait()
  local f = io.open("/proc/thread-self/schedstat")
  if not f then return 0 end
  local waited = f:read("a"):match("^%d+ (%d+)")
  f:close()
  return waited and tonumber(waited) / 1e9 or 0
end

-- Call fn(...); return how long it took, then its results.  The time is
-- a table: wall (seconds) and own (wall less the time the thread waited
-- for a CPU meanwhile).  On a loaded machine the run queue alone
-- stretched a 0.01 s connect to 0.3 s, so an upper bound applies to own;
-- a lower bound applies to wall (a wait for a CPU can fall inside a
-- deadline the code keeps).
function M.timed(fn, ...)
  local t0, queued0 = socket.gettime(), M.cpu_wait()
  local r = table.pack(fn(...))
  local wall = socket.gettime() - t0
  return { wall = wall, own = wall - (M.cpu_wait() - queued0) }, table.unpack(r, 1, r.n)
end

-- Fail unless a time from M.timed is at least min (wall) and under max
-- (own).
function M.assert_took(took, min, max)
  if took.wall >= min and took.own < max then return end
  error(("took %.3f s (%.3f s without the waits for a CPU), not in %g .. %g s")
        :format(took.wall, took.own, min, max), 2)
end

-- socket.run(fn, ...) that must end cleanly (return true) within limit
-- seconds, not counting the waits for a CPU (M.timed).
function M.run_ok(limit, fn, ...)
  local took, ok, err = M.timed(socket.run, fn, ...)
  assert(ok, err)
  M.assert_took(took, 0, limit)
end

-- A task that counts its turns (tk.n) until tk.stop is set: proof that the
-- loop ran other tasks while one waited.
function M.ticker()
  local tk = { n = 0, stop = false }
  socket.spawn(function()
    while not tk.stop do
      tk.n = tk.n + 1
      socket.sleep(0.002)
    end
  end)
  return tk
end

--------------------------------------------------------------------------
-- Child programs

-- Path p made absolute (children may change directory).
function M.absolute(p)
  if p:sub(1, 1) == "/" then return p end
  local pwd = io.popen("pwd")
  local dir = pwd:read("l")
  pwd:close()
  return dir .. "/" .. p
end

-- The luasock under test.
M.LUASOCK = M.absolute(child.LUASOCK)

-- Whether it is the sanitizer build (CTest sets LUASOCK_SANITIZE to 1 or 0;
-- by hand, ON or OFF): slower, and with its own malloc.
M.SANITIZED = ({ ["1"] = true, ON = true, TRUE = true })[(os.getenv("LUASOCK_SANITIZE") or ""):upper()]
  or false
M.PYTHON = child.PYTHON

-- Run a session of the luasock REPL on a pseudo-terminal: steps is the
-- step list of tests/pty_drive.py (type this, wait for that output or
-- screen, run this shell command...); HOME is the directory home, TERM
-- dumb (readline then writes no escape codes).  Fails the test with the
-- transcript if a step fails.
local PTY_DRIVE = M.absolute((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests")
                             .. "/pty_drive.py")
function M.terminal(steps, home)
  local r = M.run({ M.PYTHON, PTY_DRIVE, M.write_file(home .. "/steps", steps), "--", M.LUASOCK },
                  { env = { HOME = home, TERM = "dumb" }, stderr = "out", limit = 60 })
  assert(r.out:match("^ok\n"), r.out)
end

-- Run argv (a list of words, quoted here) to its end and return
-- { out = stdout, err = stderr, how = "exit" or "signal", code = n }.
-- Raises if it runs longer than opts.limit seconds (default 10).
-- opts: stdin (text; else /dev/null), env (NAME = value, or false to
-- unset NAME), cwd, stderr = "out" (merged into out).
function M.run(argv, opts)
  opts = opts or {}
  local limit = opts.limit or 10
  local words = { "timeout", "-k", "2", tostring(limit), "env" }
  local unset, set = {}, {}
  for name, v in pairs(opts.env or {}) do
    if v then set[#set + 1] = name .. "=" .. v else unset[#unset + 1] = name end
  end
  table.sort(unset); table.sort(set)
  for _, name in ipairs(unset) do table.move({ "-u", name }, 1, 2, #words + 1, words) end
  table.move(set, 1, #set, #words + 1, words)       -- env takes options before NAME=value
  table.move(argv, 1, #argv, #words + 1, words)
  local dir = M.temp_dir()
  local input = opts.stdin and M.write_file(dir .. "/in", opts.stdin) or "/dev/null"
  local err = opts.stderr == "out" and "2>&1" or "2>" .. M.quote(dir .. "/err")
  local _, how, code = os.execute(("cd %s && %s <%s >%s %s"):format(M.quote(opts.cwd or "."),
    M.command(words), M.quote(input), M.quote(dir .. "/out"), err))
  local r = { out = M.read_file(dir .. "/out"), err = M.read_file(dir .. "/err") or "",
              how = how, code = code }
  if how == "exit" and (code == 124 or code == 137) then
    error(("%s ran longer than %g s; output:\n%s%s"):format(argv[1], limit, r.out, r.err), 2)
  end
  return r
end

-- Start argv as a child whose output is read with a time limit (see
-- tests/peers/child.lua: c:line(), c:expect(pattern), c:address(prefix),
-- c:send, c:close_stdin, c:rest, c:wait, c:stderr).  It is killed and
-- reaped after the test (c:kill() ends it earlier).
function M.start(argv, opts)
  local c = child.start(argv, opts)
  M.defer(function() c:kill() end)
  return c
end

-- The command line of scripts/name with its arguments, run by luasock.
function M.script(name, ...)
  return { M.LUASOCK, "scripts/" .. name, ... }
end

-- The port a socket is bound to.
M.port_of = child.port_of

-- A TCP client connected to host (default 127.0.0.1) port, timeout 2 s.
M.connect = child.connect

return M

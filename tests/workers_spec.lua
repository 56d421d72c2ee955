-- tests/workers_spec.lua: socket.run{workers = N}.  A script makes its
-- listening socket and spawns its tasks, then N worker processes run
-- copies of the tasks and share the socket; the supervisor restarts a
-- worker that dies, stops them all on SIGTERM, relays their output line
-- by line, and no worker outlives it.
--
-- Nothing sleeps to synchronise.  The test server's worker answers a
-- connection with its pid and number, then serves nobody else until the
-- client closes: so while a test holds k connections, the next one can
-- only be accepted by another worker, and which workers answer is known.
local socket = require "socket"
local support = require "tests.support"

-- The server: "listening on ADDRESS", then each worker answers "PID N".
-- With "graceful", a worker takes SIGTERM through socket.signals and
-- prints "worker N stops" before it ends its tasks.
local SERVER = [[
local socket = require "socket"
local workers, mode = tonumber(arg[1]) or arg[1], arg[2]
local s = assert(socket.create_server({"127.0.0.1", 0}))
print("listening on " .. tostring(s:getsockname()))
io.stdout:flush()
local function pid()
  local f = io.open("/proc/self/stat")
  local n = f:read("n")
  f:close()
  return n
end
local acceptor = socket.spawn(function()
  while true do
    local c = assert(s:accept())
    c:sendall(pid() .. " " .. socket.worker() .. "\n")
    c:recv(10)   -- the client closes it: then the next one
    c:close()
  end
end)
if mode == "graceful" then
  local sig = socket.signals("TERM")
  socket.spawn(function()
    sig:wait()
    print("worker " .. socket.worker() .. " stops")
    acceptor:cancel()
    sig:close()
  end)
end
print("run returned", socket.run{workers = workers})
]]

local function start_server(workers, mode)
  local path = support.temp_file(SERVER, "server.lua")
  local c = support.start({ support.LUASOCK, path, tostring(workers), mode })
  local _, port = c:address("listening on")
  return c, port
end

-- Connect and read the worker's answer: the connection, its pid, its number.
local function ask(port)
  local conn = support.connect(port)
  conn:settimeout(10)
  local line = assert(conn:makefile():read("l"))
  local pid, n = line:match("^(%d+) (%d+)$")
  assert(pid, "answer: " .. line)
  return conn, tonumber(pid), tonumber(n)
end

-- A server of two workers, each holding a connection of ours: the
-- server, then for each worker its connection and its pid.
local function two_busy_workers(mode)
  local c, port = start_server(2, mode)
  local conn1, pid1 = ask(port)
  local conn2, pid2 = ask(port)
  return c, conn1, pid1, conn2, pid2
end

-- Whether process pid still exists (a zombie counts as gone).
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local state = f:read("a"):match("%) (%a)")
  f:close()
  return state ~= "Z"
end

-- Whether process pid, which is not our child, ends within 10 s: its
-- descriptors close before it becomes a zombie, and nothing tells us
-- when it does, so look until it has.
local function ends(pid)
  local deadline = socket.gettime() + 10
  while alive(pid) do
    if socket.gettime() > deadline then return false end
    socket.sleep(0.01)
  end
  return true
end

-- The first line of text matching pattern, or nil.
local function find_line(text, pattern)
  for line in text:gmatch("[^\n]*") do
    if line:match(pattern) then return line end
  end
end

-- The unshare flags that make a mount namespace here (a user namespace
-- first, plain as root), or nil.
local function mount_ns_flags()
  for _, flags in ipairs({ "-rm", "-m" }) do
    if os.execute("unshare " .. flags .. " true 2>/dev/null") then return flags end
  end
end

-- A server whose two tasks waited before the fork: one is in accept on
-- "main" then, the other waited in accept on "lazy" (timed out) and then
-- waits for an event that only a worker sets.  Each worker answers a
-- connection with "main N" or "lazy N" and holds it until the client
-- closes.  It never reads /proc.
local WAITED_BEFORE_FORK = [[
local socket = require "socket"
local main = assert(socket.create_server({"127.0.0.1", 0}))
local lazy = assert(socket.create_server({"127.0.0.1", 0}))
local function serve(s, name)
  while true do
    local c = assert(s:accept())
    c:sendall(name .. " " .. socket.worker() .. "\n")
    c:recv(10)
    c:close()
  end
end
local lazy_waited, in_worker = socket.event(), socket.event()
socket.spawn(serve, main, "main")
socket.spawn(function()
  lazy:settimeout(0.001)
  assert(select(2, lazy:accept()) == "timeout")
  lazy:settimeout(nil)
  lazy_waited:set()
  in_worker:wait()
  serve(lazy, "lazy")
end)
lazy_waited:wait()   -- turns the loop: both tasks have waited
print("main on " .. tostring(main:getsockname()))   -- only workers accept now
print("lazy on " .. tostring(lazy:getsockname()))
io.stdout:flush()
socket.spawn(function() in_worker:set() end)   -- runs in the workers only
print("run returned", socket.run{workers = 2})
]]

-- A supervisor whose stdout is a pipe nobody reads: its pid, then
-- "stalled N" once the pipe holds N >= 48 KiB (it is full: 64 KiB), then
-- "exit STATUS" when the supervisor ended.
local STALLED_STDOUT = [[
import array, fcntl, os, subprocess, sys, termios, time
r, w = os.pipe()
p = subprocess.Popen(sys.argv[1:], stdout=w)
os.close(w)
print("pid", p.pid, flush=True)
n, deadline = array.array("i", [0]), time.monotonic() + 60
while n[0] < 49152 and time.monotonic() < deadline:
    fcntl.ioctl(r, termios.FIONREAD, n)
    time.sleep(0.01)
print("stalled", n[0], flush=True)
print("exit", p.wait(), flush=True)
]]

-- The pids of process pid's children.
local function children(pid)
  local kids = {}
  for kid in support.read_file(("/proc/%d/task/%d/children"):format(pid, pid)):gmatch("%d+") do
    kids[#kids + 1] = tonumber(kid)
  end
  return kids
end

-- Run script with the stock lua5.4 and the build's module (argv for
-- support.run: the shell runs "$@", then what follows); nil under the
-- sanitizers, whose runtime lua5.4 lacks.
local function under_lua54(script, shell)
  if support.SANITIZED then return nil end
  local build = support.absolute(os.getenv("LUASOCK_BUILD") or "build")
  return { "bash", "-c", shell, "bash", "env", "LUA_CPATH=" .. build .. "/lua/?.so;;", "lua5.4", script }
end

-- Workers that print 2 x 2,000 lines of 100 bytes, then say on stderr
-- that they are done; the supervisor says what run returned on stderr.
local CHATTY = [[
local socket = require "luasock"
socket.spawn(function()
  for i = 1, 2000 do print(("worker %d line %4d %s"):format(socket.worker(), i, ("x"):rep(78))) end
  io.stderr:write("worker ", socket.worker(), " done\n")
end)
io.stderr:write("run returned ", tostring(socket.run{workers = 2}), "\n")
]]

describe("socket.run{workers = N}", function()
  it("gives connections to every worker, each with a pid of its own", function()
    local c, port = start_server(3)
    local pids, numbers, conns = {}, {}, {}
    for i = 1, 3 do
      local conn, pid, n = ask(port)
      conns[i] = conn
      assert.is_nil(pids[pid], "two connections reached pid " .. pid)
      pids[pid], numbers[n] = true, true
      assert.is_true(alive(pid))
      assert.are_not.equal(c.pid, pid)
    end
    assert.same({ true, true, true }, numbers)
    for _, conn in ipairs(conns) do conn:close() end
  end)

  it("restarts a worker that was killed, and the new one serves", function()
    local c, port = start_server(2)
    local conn1, pid1, n1 = ask(port)
    local conn2, pid2 = ask(port)
    os.execute("kill -9 " .. pid1)
    assert.equal("", conn1:recv(10))   -- it died
    -- The other worker is busy with conn2: only the new one can answer.
    local conn3, pid3, n3 = ask(port)
    assert.is_true(pid3 ~= pid1 and pid3 ~= pid2)
    assert.equal(n1, n3)
    assert.matches("worker " .. n1 .. " %(pid " .. pid1 .. "%) was killed by signal 9: restarting",
                   c:stderr())
    conn1:close(); conn2:close(); conn3:close()
  end)

  -- A SIGCHLD ignored by whoever started luasock stays ignored across
  -- exec; the kernel then reaped the workers itself, waitpid never saw
  -- one die, and a killed worker was never restarted.
  it("restarts a killed worker when it was started with SIGCHLD ignored", function()
    local path = support.temp_file(SERVER, "server.lua")
    local ignore_chld = "import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
                        .. "os.execv(sys.argv[1], sys.argv[1:])"
    local c = support.start({ support.PYTHON, "-c", ignore_chld, support.LUASOCK, path, "2" })
    local _, port = c:address("listening on")
    local conn1, pid1 = ask(port)
    local conn2, pid2 = ask(port)
    os.execute("kill -9 " .. pid1)
    assert.equal("", conn1:recv(10))
    local conn3, pid3 = ask(port)
    assert.is_true(pid3 ~= pid1 and pid3 ~= pid2)
    conn1:close(); conn2:close(); conn3:close()
  end)

  it("stops every worker on SIGTERM to the supervisor, which exits 0", function()
    local c, conn1, pid1, conn2, pid2 = two_busy_workers()
    os.execute("kill -TERM " .. c.pid)
    assert.equal(0, c:wait())
    assert.is_false(alive(pid1))
    assert.is_false(alive(pid2))
    assert.is_false(alive(c.pid))
    assert.equal("run returned\ttrue", find_line(c:rest(), "^run returned"))
    conn1:close(); conn2:close()
  end)

  it("lets workers that take SIGTERM with socket.signals end their tasks", function()
    local c, conn1, pid1, conn2, pid2 = two_busy_workers("graceful")
    conn1:close(); conn2:close()
    os.execute("kill -TERM " .. c.pid)
    assert.equal(0, c:wait())
    local out = c:rest()
    assert.truthy(find_line(out, "^worker 1 stops$"), out)
    assert.truthy(find_line(out, "^worker 2 stops$"), out)
    assert.equal("", c:stderr())   -- they ended cleanly: no restart, no error
    assert.is_false(alive(pid1) or alive(pid2))
  end)

  it("leaves no worker behind when the supervisor is killed", function()
    local c, conn1, pid1, conn2, pid2 = two_busy_workers()
    os.execute("kill -9 " .. c.pid)
    assert.equal("", conn1:recv(10))   -- each worker died with it
    assert.equal("", conn2:recv(10))
    assert.is_true(ends(pid1) and ends(pid2))
    conn1:close(); conn2:close()
  end)

  -- A forked worker made its own epoll set and registered again the
  -- descriptors of the parent's by reading /proc/self/fdinfo: where /proc
  -- is not mounted (a container, a chroot) no worker could make its loop,
  -- each one exited 1 at its start, and the supervisor gave up.
  it("works without /proc, tasks having waited before the fork", function()
    if support.SANITIZED then
      -- It finds its stack's bounds in /proc/self/maps: without them it
      -- reports false stack overflows, and LeakSanitizer fails at exit.
      print("skipped: AddressSanitizer needs /proc (the normal build runs this test)")
      return
    end
    local flags = mount_ns_flags()
    if not flags then print("skipped: unshare cannot make a mount namespace here"); return end
    local path = support.temp_file(WAITED_BEFORE_FORK, "server.lua")
    local hide = 'mount -t tmpfs none /proc && exec "$@"'
    local c = support.start({ "unshare", flags, "sh", "-c", hide, "sh", support.LUASOCK, path })
    local _, main_port = c:address("main on")
    local _, lazy_port = c:address("lazy on")
    local function answer(port)
      local conn = support.connect(port)
      conn:settimeout(10)
      return conn, assert(conn:makefile():read("l"))
    end
    local conn1, a1 = answer(main_port)
    local conn2, a2 = answer(main_port)   -- the other worker: the first holds conn1
    local answers = { a1, a2 }
    table.sort(answers)
    assert.same({ "main 1", "main 2" }, answers, c:stderr())
    local conn3, a3 = answer(lazy_port)
    assert.matches("^lazy [12]$", a3)
    os.execute("kill -TERM " .. c.pid)
    assert.equal(0, c:wait())
    assert.equal("run returned\ttrue", find_line(c:rest(), "^run returned"))
    assert.is_nil(c:stderr():match("luasock: [^\n]*"))
    conn1:close(); conn2:close(); conn3:close()
  end)

  -- The supervisor wrote the workers' lines to its stdout with a blocking
  -- write while it blocked its signals: with a reader that stopped
  -- reading, it hung in write(2) for ever, and SIGTERM, SIGINT and the
  -- death of a worker waited in its signalfd unread; it could neither
  -- stop nor restart anyone.
  it("restarts a worker and stops on SIGTERM while nobody reads its stdout", function()
    local script = support.temp_file([[
local socket = require "socket"
socket.spawn(function()
  local line = ("x"):rep(999) .. "\n"
  while true do io.stdout:write(line) end
end)
io.stderr:write("run returned ", tostring(socket.run{workers = 2}), "\n")
]])
    local c = support.start({ support.PYTHON, "-c", STALLED_STDOUT, support.LUASOCK, script })
    local pid = tonumber(c:expect("^pid (%d+)$"))
    assert.is_true(tonumber(c:expect("^stalled (%d+)$", 60)) >= 49152)
    local kids = children(pid)
    assert.equal(2, #kids)
    local killed = kids[1]
    os.execute("kill -KILL " .. killed)
    -- No event tells when the new worker is forked: look until it is (10 s).
    local deadline = socket.gettime() + 10
    repeat
      kids = children(pid)
      local restarted = #kids == 2 and kids[1] ~= killed and kids[2] ~= killed
    until restarted or socket.gettime() > deadline or not socket.sleep(0.02)
    assert.is_true(#kids == 2 and kids[1] ~= killed and kids[2] ~= killed)
    os.execute("kill -TERM " .. pid)
    assert.equal("0", c:expect("^exit (%-?%d+)$", 10))
    assert.matches("^luasock: worker %d %(pid " .. killed .. "%) was killed by signal 9: "
                   .. "restarting in [%d.]+ s\nrun returned true\n$", c:stderr())
    for _, kid in ipairs(kids) do assert.is_true(ends(kid)) end
  end)

  -- A worker's last line without its newline went on as it was, and the
  -- next line passed on, another worker's or the script's, was glued to it.
  it("ends the unfinished last line of a worker that ended", function()
    local script = support.temp_file([[
local socket = require "socket"
socket.spawn(function()
  io.stdout:write("worker " .. socket.worker() .. " line\n", "worker " .. socket.worker() .. " open")
end)
assert(socket.run{workers = 2})
print("done")
]])
    local r = support.run({ support.LUASOCK, script })
    assert.equal(0, r.code, r.err)
    local lines = {}
    for line in r.out:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    assert.equal("done", table.remove(lines))
    table.sort(lines)
    assert.same({ "worker 1 line", "worker 1 open", "worker 2 line", "worker 2 open" }, lines)
  end)

  it("passes other workers' lines on while one writes without a newline for ever", function()
    local script = support.temp_file([[
local socket = require "socket"
socket.spawn(function()
  if socket.worker() == 1 then
    local chunk = ("y"):rep(65536)
    while true do io.stdout:write(chunk) end
  end
  io.stdout:write("worker 2 says hello\n")
  socket.sleep(1e6)
end)
print(socket.run{workers = 2})
]])
    local c = support.start({ support.LUASOCK, script })
    c:expect("worker 2 says hello$", 30)   -- perhaps after a 1 MiB piece of worker 1's
    os.execute("kill -TERM " .. c.pid)
    assert.equal(0, c:wait(20))
  end)

  -- Under the stock lua5.4 the module is luasock.so, which lua_close
  -- unloads: a worker went on running its code after lua_close, and every
  -- worker died of SIGSEGV at its end (restarted, until the supervisor
  -- gave up).
  it("lets workers end cleanly under the stock lua5.4", function()
    local argv = under_lua54(support.temp_file(CHATTY), '"$@" >/dev/null')
    if not argv then print("skipped: the sanitizers' runtime is not in lua5.4"); return end
    local r = support.run(argv, { limit = 30 })
    assert.equal(0, r.code, r.err)
    assert.matches("^worker %d done\nworker %d done\nrun returned true\n$", r.err)
  end)

  -- The stock lua5.4 leaves SIGPIPE at its default: when the reader of the
  -- supervisor's stdout went away (| head -1), its next write killed it,
  -- and every worker died with it.
  it("goes on when the reader of its stdout goes away, under the stock lua5.4", function()
    local argv = under_lua54(support.temp_file(CHATTY),
                             '"$@" | head -n 1; echo "status ${PIPESTATUS[0]}"')
    if not argv then print("skipped: the sanitizers' runtime is not in lua5.4"); return end
    local r = support.run(argv, { limit = 30 })
    assert.matches("^worker [12] line    1 x+\nstatus 0\n$", r.out)
    assert.matches("^worker %d done\nworker %d done\nrun returned true\n$", r.err)
  end)

  it("passes each worker's output on in whole lines, long ones too", function()
    -- Each line goes out in pieces, flushed one by one: written straight to
    -- one pipe, lines of two workers would mix.
    local script = support.temp_file([[
local socket = require "socket"
socket.spawn(function()
  local n = socket.worker()
  for i = 1, 40 do
    local f = i % 2 == 0 and io.stdout or io.stderr
    local size = i % 4 < 2 and 100000 or 10
    f:write("w", n, " ", i, " ")
    f:flush()
    for _ = 1, 4 do
      f:write(("x"):rep(size // 4))
      f:flush()
      socket.sleep(0)
    end
    f:write("\n")
  end
end)
assert(socket.run{workers = 3})
print("done")
]])
    local r = support.run({ support.LUASOCK, script }, { limit = 30 })
    assert.equal(0, r.code, r.err)
    local seen = 0
    for _, text in ipairs({ r.out, r.err }) do
      for line in text:gmatch("([^\n]*)\n") do
        if line ~= "done" then
          local n, i, xs = line:match("^w(%d) (%d+) (x*)$")
          assert(n, "a line mixed: " .. line:sub(1, 80))
          assert.equal(tonumber(i) % 4 < 2 and 100000 or 8, #xs)
          seen = seen + 1
        end
      end
    end
    assert.equal(3 * 40, seen)
    assert.equal("done\n", r.out:sub(-5))
  end)

  it("gives up on a worker that keeps dying at its start, in bounded time", function()
    local script = support.temp_file([[
local socket = require "socket"
socket.spawn(function() os.exit(3) end)
print(socket.run{workers = 2})
]])
    local r = support.run({ support.LUASOCK, script }, { limit = 60 })
    assert.equal(0, r.code)
    assert.matches("^false\tworker %d %(pid %d+%) exited with status 3, 5 times within 10 s of its start\n$", r.out)
    assert.matches("worker 1 %(pid %d+%) exited with status 3: restarting in 0.1 s", r.err)
    assert.matches("restarting in 0.8 s", r.err)
  end)

  it("runs one worker per CPU with \"auto\", then returns true when all ended", function()
    local script = support.temp_file([[
local socket = require "socket"
socket.spawn(function() print("worker", socket.worker()) end)
print(socket.run{workers = "auto"}, socket.worker())
]])
    local r = support.run({ support.LUASOCK, script })
    assert.equal(0, r.code, r.err)
    local ncpu = tonumber(support.run({ "nproc" }).out)
    local numbers = {}
    for n in r.out:gmatch("worker\t(%d+)\n") do numbers[#numbers + 1] = tonumber(n) end
    table.sort(numbers)
    local want = {}
    for i = 1, ncpu do want[i] = i end
    assert.same(want, numbers)
    assert.equal("true\tnil\n", r.out:sub(-9))
  end)

  it("with workers = 1 or none runs the tasks here, as socket.run()", function()
    for _, opts in ipairs({ { workers = 1 }, {} }) do
      local ran
      socket.spawn(function() ran = socket.worker() or "here" end)
      assert.same({ true }, { socket.run(opts) })
      assert.equal("here", ran)
    end
  end)

  it("raises on bad options, inside a task and in a worker", function()
    local bad = { 0, -1, 2.5, 1025, "two", true }
    for _, n in ipairs(bad) do
      assert.has_error(function() socket.run{ workers = n } end,
        ("socket.run: workers must be a whole number from 1 to 1024 or \"auto\", got %s"):format(tostring(n)))
    end
    assert.has_error(function() socket.run{ worker = 2 } end, "socket.run: unknown option 'worker'")
    local t = socket.spawn(function() return pcall(socket.run, { workers = 2 }) end)
    assert.is_true(socket.run())
    assert.same({ true, false, "socket.run{workers} called from inside a task" }, { t:join() })
    local script = support.temp_file([[
local socket = require "socket"
socket.spawn(function()
  print(pcall(socket.run, { workers = 2 }))
end)
print(socket.run{workers = 2})
]])
    local r = support.run({ support.LUASOCK, script })
    assert.equal(0, r.code, r.err)
    assert.equal(2, select(2, r.out:gsub("called from inside a task", "")))
  end)

  it("runs scripts/http_hello.lua with --workers 2", function()
    local c = support.start(support.script("http_hello.lua", "--workers", "2", "127.0.0.1", "0"))
    local _, port = c:address("HTTP server at:")
    local conn = support.connect(port)
    assert(conn:sendall("GET / HTTP/1.0\r\n\r\n"))
    local f = conn:makefile()
    assert.equal("HTTP/1.1 200 OK\r", f:read("l"))
    conn:close()
    -- The supervisor forks the second worker while the first serves: no
    -- event tells when, so look until it is there (10 s at most).
    local kids, deadline = {}, socket.gettime() + 10
    repeat
      local list = support.read_file(("/proc/%d/task/%d/children"):format(c.pid, c.pid))
      kids = {}
      for pid in list:gmatch("%d+") do kids[#kids + 1] = pid end
    until #kids == 2 or socket.gettime() > deadline or not socket.sleep(0.02)
    assert.equal(2, #kids)
    for _, pid in ipairs(kids) do
      assert.matches("http_hello.lua", support.read_file("/proc/" .. pid .. "/cmdline"))
    end
  end)

  it("refuses to fork the REPL", function()
    local r = support.run({ support.LUASOCK, "-i" },
      { stdin = "print(pcall(socket.run, {workers = 2}))\n", stderr = "out" })
    assert.matches("cannot fork the REPL", r.out)
  end)
end)

-- faults_spec: transfers stay intact while the socket calls fail now and
-- then.  tests/faults/faultshim.c, preloaded into a child luasock, injects
-- EINTR, EAGAIN (re-arming the poller, as data arriving just after it
-- would), short reads and writes, ECONNABORTED and EMFILE from accept and
-- refused connects at a seeded rate into every syscall the module makes;
-- the child runs tests/faults/workload.lua (echo with recv/sendall, line
-- and length-prefixed streams, UDP, accept; in tasks and outside) and
-- must print "ok": every byte back, no timeout, no descriptor leaked.
--
-- The same workload goes over TLS, and a Ctrl-C comes during a TLS read
-- and write (tests/faults/tls_ctrlc.lua).
--
-- Under AddressSanitizer the ASan runtime is preloaded first (the one
-- luasock links, from ldd), so that its interceptors wrap ours.
local support = require "tests.support"
local tls = require "tests.tls_support"
local BUILD = os.getenv("LUASOCK_BUILD") or "build"
local SHIM = support.absolute(BUILD .. "/libfaultshim.so")

-- LD_PRELOAD for the child: the shim, after the ASan runtime if linked.
local function preload()
  local asan = support.run({ "ldd", support.LUASOCK }).out:match("libasan%S* => (%S+)")
  return asan and (asan .. ":" .. SHIM) or SHIM
end

-- Run the workload (env: what to set for it); returns its output
-- (stdout and stderr) and exit status.
local function workload(rounds, env, limit)
  local r = support.run({ support.LUASOCK, "tests/faults/workload.lua", rounds },
                        { env = env, stderr = "out", limit = limit })
  return r.out, r.code
end

-- Run the workload under the shim; returns its output, exit status and
-- the counts of faults injected by kind.
local function run_workload(seed, faults, rounds)
  local report = support.temp_path()
  local out, status = workload(rounds, { FAULT_SEED = seed, FAULT_RATE = 10, FAULTS = faults,
                                         FAULT_REPORT = report, LD_PRELOAD = preload() }, 120)
  local counts = {}
  for line in io.lines(report) do
    local kind, n = line:match("^(%a+) (%d+)$")
    counts[kind] = (counts[kind] or 0) + tonumber(n)
  end
  return out, status, counts
end

describe("under injected syscall faults", function()
  local FAULTS = "eintr,eagain,shortr,shortw,aborted,emfile,connect,soerror"

  -- Every kind must be injected at least once.  A connect waits (and so
  -- reads SO_ERROR) only a few times per run, so "soerror" can miss four
  -- seeds in a row: further seeds run, up to 16, only while a kind is
  -- still missing.
  it("echo, streams, UDP and accept come out intact, seeds 1 to 4 (more while a kind is missing)", function()
    local total = {}
    local function missing()
      for kind in FAULTS:gmatch("%a+") do
        if (total[kind] or 0) == 0 then return kind end
      end
    end
    for seed = 1, 16 do
      if seed > 4 and not missing() then break end
      local out, status, counts = run_workload(seed, FAULTS, 1)
      assert.equal(0, status, ("seed %d:\n%s"):format(seed, out))
      assert.equal("ok\n", out)
      for kind, n in pairs(counts) do total[kind] = (total[kind] or 0) + n end
    end
    local kind = missing()
    assert.is_nil(kind, "no " .. tostring(kind) .. " was injected")
  end)

  -- A stream's read that finds no input sends the pending output first:
  -- the peer may be waiting for it.  When a signal interrupts that send,
  -- read_more hands EINTR up and the driver tries the read again at once,
  -- the send with it.  Taken for "nothing more to send now", it would
  -- leave the request in the buffer and wait for the reply to it until
  -- the timeout.  The shim interrupts exactly the first send after the
  -- arming, the one of the first read; each request must reach the peer
  -- once, in order.
  it("a stream read whose send of pending output a signal interrupts sends it once", function()
    local armfile, report = support.temp_path(), support.temp_path()
    local r = support.run({ support.LUASOCK, "-e", ([[
local socket = require "socket"
local a, b = socket.socketpair()
a:settimeout(2); b:settimeout(2)
local got = {}
local peer = socket.spawn(function()
  local pf = b:makefile("rw")
  for line in pf:lines() do got[#got + 1] = line; pf:write("re:", line, "\n"):flush() end
end)
local f = a:makefile("rw")
assert(io.open(%q, "w")):close()   -- armed: the next send is interrupted
f:write("one\n")
print(f:read("l"))
f:write("two\n")
print(f:read("l"))
f:close(); a:shutdown(socket.SHUT_WR)
assert(peer:join())
print(table.concat(got, ","))
]]):format(armfile) }, { env = { FAULTS = "eintr", FAULT_RATE = 100, FAULT_CALLS = "send",
                                 FAULT_LIMIT = 1, FAULT_ARMFILE = armfile,
                                 FAULT_REPORT = report, LD_PRELOAD = preload() },
                         stderr = "out", limit = 30 })
    assert.equal(0, r.code, r.out)
    assert.equal("re:one\nre:two\none,two\n", r.out)
    assert.matches("eintr 1", support.read_file(report))
  end)

  it("the workload passes without the shim", function()
    local out, status = workload(1, {}, 60)
    assert.equal(0, status, out)
    assert.equal("ok\n", out)
  end)

  -- A deadline scope ends every wait, a name lookup on a helper thread
  -- too: it used to wait for getaddrinfo however slow it was (only cancel
  -- ended it).  The thread's late result is dropped; the block it writes
  -- into stays alive until then (ASan would see a use after free), and the
  -- other tasks run meanwhile: the ticker ticks during the call (a
  -- lookup that blocked the loop would see no tick at all).
  it("a deadline scope ends a slow name lookup on a helper thread", function()
    local r = support.run({ support.LUASOCK, "-e", [[
local socket = require "socket"
local res, ticks, done = nil, 0, false
socket.spawn(function()
  local t0, ticks0 = socket.gettime(), ticks
  res = { socket.timeout(0.1, socket.getaddrinfo, "localhost", 80) }
  res.took, res.ticked = socket.gettime() - t0, ticks > ticks0
  collectgarbage()
  res.after = { socket.timeout(0, socket.getaddrinfo, "localhost", 80) }
  done = true
end)
socket.spawn(function() while not done do ticks = ticks + 1; socket.sleep(0.01) end end)
assert(socket.run())
print(res[1], res[2], res.took < 1, res.after[2], res.ticked)
]] }, { env = { LD_PRELOAD = preload(), FAULT_RATE = 0, FAULT_GAI_DELAY_MS = 1500 },
        stderr = "out", limit = 30 })
    assert.equal("nil\ttimeout\ttrue\ttimeout\ttrue\n", r.out)
    assert.equal(0, r.code)
  end)

  -- Run script in a luasock whose getaddrinfo takes delay_ms (and holds
  -- the shim's resolver lock meanwhile); it must exit with status 0.
  -- Returns its output.
  local function slow_lookups(script, delay_ms, limit)
    local r = support.run({ support.LUASOCK, "-e", script },
                          { env = { LD_PRELOAD = preload(), FAULT_RATE = 0,
                                    FAULT_GAI_DELAY_MS = delay_ms },
                            stderr = "out", limit = limit or 30 })
    assert.equal(0, r.code, r.out)
    return r.out
  end

  -- A task whose lookup a deadline scope cut short resolved its next
  -- name inline, stopping every task until the first lookup's helper
  -- thread ended: the thread's job lived in the Task, one at a time.  A
  -- job now holds its own request, so the next lookup goes to a thread
  -- too, the other tasks run on and its scope cuts it short as well.
  it("a task's lookup after one a scope cut short runs on a helper thread too", function()
    assert.equal("nil timeout true true\tnil timeout true true\n", slow_lookups([[
local socket = require "socket"
local res, ticks, done = {}, 0, false
socket.spawn(function()
  for i = 1, 2 do
    local t0, ticks0 = socket.gettime(), ticks
    local r = { socket.timeout(0.2, socket.getaddrinfo, "localhost", 80) }
    res[i] = ("%s %s %s %s"):format(r[1], r[2], socket.gettime() - t0 < 1, ticks > ticks0)
    collectgarbage()
  end
  done = true
end)
socket.spawn(function() while not done do ticks = ticks + 1; socket.sleep(0.01) end end)
assert(socket.run())
print(res[1], res[2])
]], 2000))
  end)

  -- Outside any task a name lookup ran inline: the tasks stopped, and a
  -- deadline scope could not end it (nor Ctrl-C: the resolver goes on
  -- after EINTR).  It now runs on a helper thread while the loop turns,
  -- as other outside waits do; the late result is dropped (ASan would see
  -- a use after free or a leak), and the next lookup goes to a thread too.
  it("outside tasks, a slow lookup turns the loop and a deadline scope ends it", function()
    assert.equal("nil\ttimeout\ttrue\ttrue\nnil\ttimeout\ttrue\ttrue\ntrue\ttrue\n", slow_lookups([[
local socket = require "socket"
local ticks = 0
socket.spawn(function() while true do ticks = ticks + 1; socket.sleep(0.01) end end)
for i = 1, 2 do
  local t0, ticks0 = socket.gettime(), ticks
  local r = { socket.timeout(0.2, socket.getaddrinfo, "localhost", 80) }
  print(r[1], r[2], socket.gettime() - t0 < 1, ticks > ticks0)
  collectgarbage()
end
print(#assert(socket.getaddrinfo("127.0.0.1", 80)) > 0, #assert(socket.getaddrinfo("localhost", 80)) > 0)
os.exit(0, true)
]], 800))
  end)

  -- A task waiting for its lookup that the script resumed itself went on
  -- as if the helper thread had finished: it read the request the thread
  -- still owned (no result yet: an empty list from getaddrinfo, a NULL
  -- dereference in gethostbyname).  Such a resume now only parks it again.
  it("a task the script resumes during its lookup waits for the real result", function()
    assert.equal("true\ttrue\n", slow_lookups([[
local socket = require "socket"
local res = {}
local t = socket.spawn(function()
  res.list = socket.getaddrinfo("localhost", 80)
  res.host = socket.gethostbyname("localhost")
end)
socket.spawn(function()   -- t waits on a helper thread now
  assert(coroutine.resume(debug.getuservalue(t)))
  socket.sleep(0)
  assert(coroutine.resume(debug.getuservalue(t)))
end)
assert(socket.run())
print(#res.list > 0, res.host == "127.0.0.1")
]], 300))
  end)

  -- Ctrl-C could not stop an outside lookup: getaddrinfo ran inline and
  -- went on after the signal.  The task prints "ready" only once the loop
  -- turns, that is while the main thread waits for the lookup; Ctrl-C then
  -- ends the wait at once, long before the lookup would.
  it("Ctrl-C ends an outside lookup at once", function()
    local c = support.start({ "env", "LD_PRELOAD=" .. preload(), "FAULT_RATE=0", "FAULT_GAI_DELAY_MS=6000",
                              support.LUASOCK, "-e", [[
local socket = require "socket"
socket.spawn(function() print("ready"); io.stdout:flush(); socket.sleep(30) end)
local t0 = socket.gettime()
local ok, err = pcall(socket.getaddrinfo, "localhost", 80)
print(ok, err, socket.gettime() - t0 < 4)
io.stdout:flush()
]] }, { stdin = "null" })
    assert.equal("ready", c:line(10))
    assert(os.execute("kill -INT " .. c.pid))
    assert.equal("false\tinterrupted!\ttrue", c:line(10))
  end)

  -- A worker forked while a helper thread was inside getaddrinfo: the
  -- child inherited the resolver's locks held by a thread it does not
  -- have, and its own lookups waited for ever.  The fork now waits for
  -- the running jobs to end first.  (The shim holds a lock of its own
  -- during its delay, as the resolver does.)
  it("a worker forked while a lookup runs on a helper thread can resolve", function()
    assert.equal("true\tnil\ttimeout\ntrue\ntrue\ntrue\n", slow_lookups([[
local socket = require "socket"
local cut = socket.spawn(socket.timeout, 0.05, socket.getaddrinfo, "localhost", 80)
print(cut:join())   -- the loop turns: the lookup goes on on its thread
socket.spawn(function()
  print(#assert(socket.getaddrinfo("localhost", 80)) > 0)
end)
print(socket.run{workers = 2})
]], 1500, 40))
  end)

  -- A forked worker cancelled every task whose lookup job was out when it
  -- forked, also one whose lookup a scope had cut short and which had
  -- gone on to wait for something else.  Jobs now follow the fork (the
  -- fork waits for the running ones to end): no task is cancelled.
  it("a task whose lookup was cut short goes on in a forked worker", function()
    assert.equal("nil\ttimeout\nwent on\nwent on\ntrue\n", slow_lookups([[
local socket = require "socket"
local cut, go = socket.event(), socket.event()
socket.spawn(function()
  print(socket.timeout(0.05, socket.getaddrinfo, "localhost", 80))
  cut:set()
  go:wait()   -- in the workers
  print("went on")
end)
assert(cut:wait(5))   -- the loop turns until the lookup was cut short
socket.spawn(function() go:set() end)
print(socket.run{workers = 2})
]], 1500, 40))
  end)

  -- The supervisor of run{workers} stopped its helper threads around
  -- every fork, restarts too, and started them again after each: a
  -- lookup cut short before run and still queued (four threads at most)
  -- then ran in the supervisor, and the next fork waited for it to end,
  -- neither reaping, relaying nor taking SIGTERM meanwhile.  The threads
  -- now stop once, before the first fork, and start again when run
  -- returns.  Four lookups take 2 s each (the shim's lock makes them take
  -- turns) and keep the threads busy while the fifth is queued (run{workers}
  -- must stop the threads within the first 2 s, before one is free to take
  -- it, which a loaded machine needs: 1 s was close); that one,
  -- of port 9, hangs until the test closes stdin (FAULT_GAI_HOLD): in
  -- each worker, which takes the queued job with it, and in the old
  -- supervisor, which then never started the next worker: the second
  -- one, or the one killed here.
  it("a lookup cut short before run{workers} delays no start, restart or stop", function()
    local c = support.start({ "env", "LD_PRELOAD=" .. preload(), "FAULT_RATE=0",
                              "FAULT_GAI_DELAY_MS=2000", "FAULT_GAI_HOLD=9", support.LUASOCK, "-e", [[
local socket = require "socket"
for port = 5, 9 do
  socket.spawn(socket.timeout, 0.05, socket.getaddrinfo, "localhost", port)
end
assert(socket.run())   -- every lookup was cut short; they go on on their threads
socket.spawn(function()
  local f = assert(io.open("/proc/self/stat"))
  print("worker " .. f:read("n"))
  f:close()
  socket.sleep(60)
end)
print(socket.run{workers = 2})
]] })
    local pids = {}
    for i = 1, 2 do pids[i] = tonumber(c:expect("^worker (%d+)$", i == 1 and 30 or nil)) end
    assert(os.execute("kill -KILL " .. pids[1]))
    local restarted = tonumber(c:expect("^worker (%d+)$"))
    assert.is_nil(({ [pids[1]] = true, [pids[2]] = true })[restarted])
    assert(os.execute("kill -TERM " .. c.pid))
    assert.equal("true", c:line())
    c:close_stdin()   -- the held lookup ends: the script can exit
    assert.equal(0, c:wait())
  end)

end)

-- The TLS BIO (tls_conn.c) used to retry an interrupted recv or send
-- itself, so the driver's policy for interrupted calls never applied to
-- TLS: a Ctrl-C that came during the syscall let the call go on and end
-- (the bytes read were then dropped when the interrupt raised at the
-- call's return, and a write was done although the call raised, so its
-- retry sent the data twice).  Now the BIO passes the interruption up
-- and the driver tries again at once, or raises for Ctrl-C before
-- anything was read or written.
describe("TLS under injected faults", function()
  local function tls_args()
    local c = tls.certs()
    return c.ca, c.server, c.server_key
  end

  it("echo and streams in tasks and outside come out intact while recv and send are interrupted", function()
    local ca, cert, key = tls_args()
    for seed = 1, 3 do
      local report = support.temp_path()
      local r = support.run({ support.LUASOCK, "tests/faults/workload.lua", 1, ca, cert, key },
                            { env = { FAULT_SEED = seed, FAULT_RATE = 20, FAULTS = "eintr,eagain,shortr,shortw",
                                      FAULT_REPORT = report, LD_PRELOAD = preload() },
                              stderr = "out", limit = 120 })
      assert.equal(0, r.code, ("seed %d:\n%s"):format(seed, r.out))
      assert.equal("ok\n", r.out)
      assert.matches("eintr [1-9]", support.read_file(report))
    end
  end)

  -- Runs tests/faults/tls_ctrlc.lua with the one SIGINT armed.
  local function ctrlc(what)
    local ca, cert, key = tls_args()
    local armfile = support.temp_path()
    return support.run({ support.LUASOCK, "tests/faults/tls_ctrlc.lua", ca, cert, key, armfile, what },
                       { env = { FAULTS = "sigint", FAULT_ARMFILE = armfile, LD_PRELOAD = preload() },
                         limit = 30 })
  end

  it("Ctrl-C during a read outside a task raises, and the bytes stay for the next recv", function()
    local r = ctrlc("read")
    assert.equal("false\tinterrupted!\nhello\n", r.out, r.err)
    assert.equal(0, r.code, r.err)
  end)

  it("Ctrl-C during a write outside a task raises before anything went; the retry sends it once", function()
    local r = ctrlc("write")
    assert.equal("false\tinterrupted!\nhello.\n", r.out, r.err)
    assert.equal(0, r.code, r.err)
  end)

  it("Ctrl-C during a read in a task ends the task and the script with interrupted!", function()
    local r = ctrlc("task")
    assert.equal("", r.out)
    assert.equal(1, r.code)
    assert.matches("interrupted!", r.err)
  end)

  -- Runs tests/faults/tls_close.lua with EINTR from the first nfaults
  -- calls named in calls after the script arms the shim.  Returns its
  -- output and the shim's report.
  local function interrupted_end(what, calls, nfaults)
    local ca, cert, key = tls_args()
    local armfile, report = support.temp_path(), support.temp_path()
    local r = support.run({ support.LUASOCK, "tests/faults/tls_close.lua", ca, cert, key, armfile, what },
                          { env = { FAULTS = "eintr", FAULT_RATE = 100, FAULT_CALLS = calls,
                                    FAULT_LIMIT = nfaults, FAULT_ARMFILE = armfile,
                                    FAULT_REPORT = report, LD_PRELOAD = preload() },
                            stderr = "out", limit = 30 })
    assert.equal(0, r.code, r.out)
    return r.out, support.read_file(report)
  end

  -- close() sends close_notify once, without waiting.  Since the BIO
  -- passes an interrupted send up as "retry" instead of sending again
  -- itself, a signal during that send dropped the close_notify: the peer
  -- saw the connection end without it (a ragged EOF, an error where
  -- ragged EOFs are not allowed).  close() now sends again when a signal
  -- interrupted the send, a few times at most.
  it("close() sends close_notify although a signal interrupts the send", function()
    local out, report = interrupted_end("close", "send", 1)
    assert.equal("\n", out)   -- "": the end of the stream, no UNEXPECTED_EOF
    assert.matches("eintr 1", report)
  end)

  -- unwrap() goes through the driver, whose policy for an interrupted
  -- call applies: both ends' close_notify arrive and the plain sockets
  -- go on, whichever sends and receives the signals interrupt first.
  it("unwrap() on both ends completes while signals interrupt its sends and receives", function()
    for n = 1, 4 do
      local out, report = interrupted_end("unwrap", "send,recv", n)
      assert.equal("plain\n", out, n .. " faults")
      assert.matches("eintr " .. n, report)
    end
  end)
end)

-- shortread_spec: a recv in a task that came back short takes the socket
-- for drained only where the kernel guarantees it.
--
-- The bug: a task's recv that returned fewer bytes than asked marked the
-- socket idle, and the task's next recv waited for an epoll event before
-- trying.  The kernel also returns short reads with data still queued: at
-- the TCP urgent mark (a peer sends AAAA, one MSG_OOB byte, CCCC: recv(100)
-- gives AAAA) and at an SCM_RIGHTS boundary on AF_UNIX (recv stops after
-- the message that carried descriptors).  No event follows for data that
-- is already queued, so the next recv waited until its timeout (for ever
-- without one) with the bytes in the socket; outside a task the same code
-- got them at once.  The readiness hint (core/wait.h) now holds for TCP
-- streams only, and ends for good once urgent data or a hang-up came: the
-- tests below fail if it is applied to AF_UNIX (also one that fromfd is
-- told is AF_INET) or after urgent data.  The last one shows the saving
-- the hint makes: a ping-pong between tasks over TCP makes no recv that
-- only says EAGAIN.
local socket = require "socket"
local support = require "tests.support"
local socket = require "socket"

-- In a task, recv from s twice; the first recv waits (so the socket is
-- watched) until send(), in another task, queues everything at once.
-- Returns both results and how long the second recv took.
local function two_recvs(s, send)
  local first, second, err, took
  socket.spawn(function()
    first = assert(s:recv(100))
    local t0 = socket.gettime()
    second, err = s:recv(100)
    took = socket.gettime() - t0
  end)
  socket.spawn(send)
  assert(socket.run())
  return first, second, err, took
end

describe("a recv in a task after a short read", function()
  it("gets the bytes after a TCP urgent mark at once", function()
    local l = assert(socket.socket())
    l:settimeout(2)
    assert(l:bind({"127.0.0.1", 0}))
    assert(l:listen())
    local c = assert(socket.socket())
    c:settimeout(2)
    assert(c:connect(l:getsockname()))
    local conn = assert(l:accept())
    conn:settimeout(2)
    local first, second, err, took = two_recvs(conn, function()
      assert(c:send("AAAA"))
      assert(c:send("B", socket.MSG_OOB))
      assert(c:send("CCCC"))
    end)
    assert.equal("AAAA", first)
    assert.equal("CCCC", second, err)
    assert.is_true(took < 1)
    c:close(); conn:close(); l:close()
  end)

  -- b sends AAAA, BBBB with a descriptor, CCCC: a recv on a stops after
  -- the second message with the third queued.
  local function across_fds(a, b)
    a:settimeout(2); b:settimeout(2)
    local x, y = assert(socket.socketpair())
    local first, second, err, took = two_recvs(a, function()
      assert(b:send("AAAA"))
      assert(socket.send_fds(b, "BBBB", {x}))   -- a recv stops after this one
      assert(b:send("CCCC"))
    end)
    assert.equal("AAAABBBB", first)
    assert.equal("CCCC", second, err)
    assert.is_true(took < 1)
    a:close(); b:close(); x:close(); y:close()
  end

  it("gets the bytes after an SCM_RIGHTS boundary on AF_UNIX at once", function()
    across_fds(assert(socket.socketpair()))
  end)

  it("goes by what the descriptor is, not by the family fromfd is told", function()
    local a0, b = assert(socket.socketpair())
    local a = assert(socket.fromfd(a0:fileno(), socket.AF_INET, socket.SOCK_STREAM))
    a0:close()
    across_fds(a, b)
  end)
end)

describe("the readiness hint on TCP", function()
  -- 300 round trips between two tasks over TCP, with recv and with a
  -- stream's read, traced with strace in a child (LSan off: it needs
  -- ptrace itself).  Each read after the first finds its socket drained
  -- by its last one and waits for the event first; without the hint
  -- every round trip made one recvfrom that failed with EAGAIN per side.
  local CHILD = [[
    local socket = require "socket"
    local l = assert(socket.create_server({"127.0.0.1", 0}))
    local c = assert(socket.create_connection(l:getsockname(), 2))
    local s = assert(l:accept())
    s:settimeout(2)
    local stream = arg[1] == "stream"
    socket.spawn(function()
      local f = stream and c:makefile("rw")
      for i = 1, 300 do
        if stream then f:write("ping ", i, "\n"); f:flush(); assert(f:read("l"))
        else assert(c:sendall("ping " .. i)); assert(c:recv(100)) end
      end
      c:close()
    end)
    socket.spawn(function()
      local f = stream and s:makefile("rw")
      for _ = 1, 300 do
        if stream then assert(f:read("l")); f:write("pong\n"); f:flush()
        else assert(s:recv(100)); assert(s:sendall("pong")) end
      end
    end)
    print(socket.run())
  ]]

  local function eagains(mode)
    local trace = support.temp_path("trace")
    local r = support.run({ "strace", "-f", "-e", "trace=recvfrom", "-o", trace,
                            support.LUASOCK, support.temp_file(CHILD), mode },
                          { stderr = "out", env = { ASAN_OPTIONS = "detect_leaks=0" }, limit = 60 })
    assert.equal("true\n", r.out)
    local calls, again = 0, 0
    for line in io.lines(trace) do
      if line:find("recvfrom(", 1, true) then calls = calls + 1 end
      if line:find("EAGAIN", 1, true) then again = again + 1 end
    end
    assert.is_true(calls >= 600, "recvfrom calls: " .. calls)
    return again
  end

  it("spares the recv that would say EAGAIN, with recv and with streams", function()
    if not os.execute("strace -f -o /dev/null true >/dev/null 2>&1") then
      print("skipped: strace cannot trace here")
      return
    end
    for _, mode in ipairs({ "recv", "stream" }) do
      local again = eagains(mode)
      assert.is_true(again < 30, mode .. ": recvfrom said EAGAIN " .. again .. " times")
    end
  end)
end)

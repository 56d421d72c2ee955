-- shortread_spec: a recv in a task that came back short must not take the
-- socket for drained.
--
-- The bug: a task's recv that returned fewer bytes than asked marked the
-- socket idle, and the task's next recv waited for an epoll event before
-- trying.  The kernel also returns short reads with data still queued: at
-- the TCP urgent mark (a peer sends AAAA, one MSG_OOB byte, CCCC: recv(100)
-- gives AAAA) and at an SCM_RIGHTS boundary on AF_UNIX (recv stops after
-- the message that carried descriptors).  No event follows for data that
-- is already queued, so the next recv waited until its timeout (for ever
-- without one) with the bytes in the socket; outside a task the same code
-- got them at once.  Every recv now tries before it waits.
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

  it("gets the bytes after an SCM_RIGHTS boundary on AF_UNIX at once", function()
    local a, b = assert(socket.socketpair())
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
  end)
end)

-- timeout_spec: timeouts are deadlines on the monotonic clock for the whole
-- call (recv, accept, connect, sendall), settimeout(0) is non-blocking,
-- and the default timeout reaches accepted sockets.  Elapsed times are
-- measured with socket.gettime and checked with generous margins.
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

-- Call fn, return its results and the seconds it took.
local function timed(fn, ...)
  local t0 = socket.gettime()
  local r = table.pack(fn(...))
  return socket.gettime() - t0, table.unpack(r, 1, r.n)
end

local function assert_timeout(ok, msg, code)
  assert.is_nil(ok)
  assert.equal("timeout", msg)
  assert.equal(E.ETIMEDOUT, code)
end

describe("timeouts", function()
  it("recv times out after about the timeout", function()
    local c, conn = support.pair("tcp")
    c:settimeout(0.3)
    local dt, ok, msg, code = timed(c.recv, c, 100)
    assert_timeout(ok, msg, code)
    assert.is_true(dt >= 0.29 and dt < 1.5, "took " .. dt)
    c:close(); conn:close()
  end)

  it("accept times out after about the timeout", function()
    local srv = support.listener("tcp")
    srv:settimeout(0.3)
    local dt, ok, msg, code = timed(srv.accept, srv)
    assert_timeout(ok, msg, code)
    assert.is_true(dt >= 0.29 and dt < 1.5, "took " .. dt)
    srv:close()
  end)

  it("sendall of 10 MB to a peer that never reads fails at the deadline and counts", function()
    local c, conn = support.pair("tcp")
    c:settimeout(0.5)
    local size = 10 * 1024 * 1024
    local dt, ok, msg, code, sent = timed(c.sendall, c, string.rep("z", size))
    assert_timeout(ok, msg, code)
    assert.is_true(dt >= 0.49 and dt < 2, "took " .. dt)
    assert.is_true(sent > 0 and sent < size, "sent " .. tostring(sent))
    c:close(); conn:close()
  end)

  it("connect and connect_ex time out on a listener whose queue is full", function()
    -- listen(0) queues one connection; later SYNs are dropped by the
    -- kernel and their connects hang until the deadline.
    local srv, addr = support.listener("tcp", 0)
    local held = {}
    local ok, msg, code, dt
    for _ = 1, 8 do
      local c = socket.socket()
      c:settimeout(0.3)
      held[#held + 1] = c
      dt, ok, msg, code = timed(c.connect, c, addr)
      if not ok then break end
    end
    assert_timeout(ok, msg, code)
    assert.is_true(dt >= 0.29 and dt < 1.5, "took " .. dt)
    local c = socket.socket()
    c:settimeout(0.3)
    held[#held + 1] = c
    local dt2, res = timed(c.connect_ex, c, addr)
    assert.equal(E.ETIMEDOUT, res)
    assert.is_true(dt2 >= 0.29 and dt2 < 1.5, "took " .. dt2)
    for _, s in ipairs(held) do s:close() end
    srv:close()
  end)

  it("settimeout(0) is non-blocking: nil, msg, EAGAIN at once", function()
    local c, conn = support.pair("tcp")
    c:settimeout(0)
    local dt, ok, msg, code = timed(c.recv, c, 100)
    assert.is_nil(ok)
    assert.equal("Resource temporarily unavailable", msg)
    assert.equal(E.EAGAIN, code)
    assert.is_true(dt < 0.1)
    local srv = support.listener("tcp")
    srv:settimeout(0)
    ok, _, code = srv:accept()
    assert.is_nil(ok)
    assert.equal(E.EAGAIN, code)
    -- A non-blocking connect reports that it is under way.
    local nb = socket.socket()
    nb:settimeout(0)
    ok, _, code = nb:connect(srv:getsockname())
    assert.is_true(ok == true or code == E.EINPROGRESS)
    nb:close(); srv:close(); c:close(); conn:close()
  end)

  it("the default timeout applies to accepted sockets", function()
    finally(function() socket.setdefaulttimeout(nil) end)
    local srv, addr = support.listener("tcp")
    socket.setdefaulttimeout(0.3)
    local c = assert(socket.socket())
    assert.equal(0.3, c:gettimeout())
    assert(c:connect(addr))
    local conn = assert(srv:accept())
    assert.equal(0.3, conn:gettimeout())
    local dt, ok, msg, code = timed(conn.recv, conn, 10)
    assert_timeout(ok, msg, code)
    assert.is_true(dt >= 0.29 and dt < 1.5, "took " .. dt)
    c:close(); conn:close(); srv:close()
  end)

  it("a blocking recv (no timeout) still returns data as it comes", function()
    local c, conn = support.pair("tcp")
    c:settimeout(nil)
    assert(conn:sendall("now"))
    assert.equal("now", c:recv(10))
    c:close(); conn:close()
  end)

  it("sendall's timeout bounds the whole call even while a slow reader makes progress", function()
    local c, conn = support.pair("tcp")
    c:settimeout(0.5)
    local dt, ok, msg, code, sent
    local done = false
    local ran, err = socket.run(function()
      socket.spawn(function()              -- reads 16 KB every 20 ms until sendall ends
        while not done do
          assert(conn:recv(16384))
          socket.sleep(0.02)
        end
      end)
      dt, ok, msg, code, sent = timed(c.sendall, c, string.rep("s", 64 * 1024 * 1024))
      done = true
    end)
    assert.is_true(ran, err)
    assert_timeout(ok, msg, code)
    assert.is_true(dt >= 0.49 and dt < 1.5, "took " .. dt)
    assert.is_true(sent > 0, "sent " .. tostring(sent))
    c:close(); conn:close()
  end)

  -- A stream's write and flush end at their deadline while a peer that
  -- reads a little now and then keeps waking their waits: like every call
  -- that may wait, they go through the retry driver, where a deadline
  -- already past times out even if the socket is ready (before, only
  -- sockio's calls had that rule; a stream's wait woken just then went
  -- on).  In a task and outside one.
  local function slow_stream_call(in_task, call)
    local c, conn = support.pair("tcp")
    c:settimeout(0.3)
    c:setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    conn:setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    local f = c:makefile("w")
    local res, dt
    local done = false
    socket.spawn(function()              -- reads 4 KB every 5 ms until the call ends
      while not done do
        assert(conn:recv(4096))
        socket.sleep(0.005)
      end
    end)
    local function run_call()
      res = table.pack(timed(call, f, string.rep("s", 4 * 1024 * 1024)))
      done = true
    end
    if in_task then socket.spawn(run_call) else run_call() end
    assert(socket.run())
    dt = table.remove(res, 1)
    assert_timeout(res[1], res[2], res[3])
    assert.is_true(dt >= 0.29 and dt < 1.5, "took " .. dt)
    f:close(); c:close(); conn:close()
    return res
  end

  local function write(f, data)
    f:setvbuf("no")
    return f:write(data)
  end

  local function flush(f, data)
    f:setvbuf("full", #data)
    assert(f:write(data))                -- all buffered: flush has it to send
    return f:flush()
  end

  it("a stream write to a slow reader ends at its deadline, in a task and outside", function()
    for _, in_task in ipairs({ true, false }) do
      local res = slow_stream_call(in_task, write)
      assert.is_true(res[4] > 0 and res[4] < 4 * 1024 * 1024, "taken " .. tostring(res[4]))
    end
  end)

  it("a stream flush to a slow reader ends at its deadline, in a task and outside", function()
    for _, in_task in ipairs({ true, false }) do slow_stream_call(in_task, flush) end
  end)
end)

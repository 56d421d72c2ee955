-- bulk_spec: moving bytes without a Lua string per chunk.  socket.buffer
-- (bounds, bad arguments), recv_into / recvfrom_into and send / sendall of
-- a buffer's range, sendfile from a Lua file, and socket.relay between two
-- sockets: content intact over large transfers (checked block by block),
-- deadlines honoured, sockets closed under a waiting call, errors as nil,
-- msg, errno, in tasks and outside them, half-closed streams in both
-- directions, and no descriptor left behind (the pipes relay makes).
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

local function assert_timeout(ok, msg, code)
  assert.is_nil(ok)
  assert.equal("timeout", msg)
  assert.equal(E.ETIMEDOUT, code)
end

-- Call fn, return the seconds it took and its results.
local function timed(fn, ...)
  local t0 = socket.gettime()
  local r = table.pack(fn(...))
  return socket.gettime() - t0, table.unpack(r, 1, r.n)
end

-- Send data on s in a task, then end s's stream (shutdown SHUT_WR).
local function feed(s, data)
  socket.spawn(function()
    assert(s:sendall(data))
    s:shutdown(socket.SHUT_WR)
  end)
end

-- Read s to the end of its stream in a task; box[1] gets the data.
local function drain(s)
  local box = {}
  socket.spawn(function() box[1] = support.recv_all(s) end)
  return box
end

describe("socket.buffer", function()
  it("has a fixed size, starts zeroed or as a copy of a string", function()
    local b = socket.buffer(16)
    assert.equal(16, #b)
    assert.equal(16, b:len())
    assert.equal(("\0"):rep(16), b:sub())
    local c = socket.buffer("hello")
    assert.equal(5, #c)
    assert.equal("hello", c:sub())
    assert.equal(0, #socket.buffer(0))
    assert.matches("^socket.buffer %(16 bytes%)", tostring(b))
  end)

  it("reads ranges as string.sub does and writes within bounds only", function()
    local b = socket.buffer("0123456789")
    assert.equal("234", b:sub(3, 5))
    assert.equal("89", b:sub(-2))
    assert.equal("", b:sub(8, 3))
    assert.equal("", b:sub(20))
    assert.equal("0123456789", b:sub(-100, 100))
    assert.is_true(b:set(9, "xy"))
    assert.equal("01234567xy", b:sub())
    assert.is_true(b:set(11, ""))
    assert.has_error(function() b:set(10, "abc") end)
    assert.has_error(function() b:set(0, "a") end)
    assert.has_error(function() b:set(12, "") end)
    assert.equal("01234567xy", b:sub())
  end)

  it("checks the arguments of every method and metamethod", function()
    assert.has_error(function() socket.buffer(-1) end)
    assert.has_error(function() socket.buffer({}) end)
    assert.has_error(function() socket.buffer(1.5) end)
    assert.has_error(function() socket.buffer(2^40) end)
    local b = socket.buffer(4)
    local mt = getmetatable(b)
    assert.has_error(function() mt.__len({}) end)
    assert.has_error(function() mt.__tostring("x") end)
    assert.has_error(function() b.sub(io.stdout) end)
    assert.has_error(function() b:sub("x") end)
    assert.has_error(function() b:set(1, {}) end)
    -- a buffer is no socket, whatever bytes it holds
    local s = support.socket()
    assert.has_error(function() s.recv(b, 1) end)
    s:close()
  end)
end)

describe("recv_into", function()
  it("receives into the buffer and returns the count, 0 at the end", function()
    local a, b = support.pair()
    local buf = socket.buffer(8)
    assert(a:sendall("hello world"))
    assert.equal(8, b:recv_into(buf))
    assert.equal("hello wo", buf:sub())
    assert.equal(2, b:recv_into(buf, 2))
    assert.equal("rl", buf:sub(1, 2))
    assert.equal(1, b:recv_into(buf, 0))   -- 0: the whole buffer, as in Python
    assert.equal("d", buf:sub(1, 1))
    a:close()
    assert.equal(0, b:recv_into(buf))
    b:close()
  end)

  it("echoes 8 MB intact with recv_into and sendall of a range, in tasks", function()
    local client, server = support.pair("tcp")
    local data = support.blocks(8000000)
    feed(client, data)
    local got = drain(client)
    socket.spawn(function()
      local buf = socket.buffer(65536)
      while true do
        local n = assert(server:recv_into(buf))
        if n == 0 then break end
        assert(server:sendall(buf, 1, n))
      end
      server:shutdown(socket.SHUT_WR)
    end)
    support.run_tasks_within(support.BULK_RUN_LIMIT)
    assert.equal(#data, #got[1])
    assert.is_true(data == got[1])
    client:close(); server:close()
  end)

  it("honours the timeout and says closed when closed meanwhile", function()
    local a, b = support.pair()
    local buf = socket.buffer(10)
    b:settimeout(0.2)
    local dt, ok, msg, code = timed(b.recv_into, b, buf)
    assert_timeout(ok, msg, code)
    assert.is_true(dt >= 0.19 and dt < 1.5, "took " .. dt)
    b:settimeout(0)
    ok, msg, code = b:recv_into(buf)
    assert.is_nil(ok)
    assert.equal(E.EAGAIN, code)
    b:settimeout(2)
    local r
    socket.spawn(function() r = table.pack(b:recv_into(buf)) end)
    socket.spawn(function() b:close() end)
    support.run_tasks()
    assert.same({ n = 3, nil, "closed", E.EBADF }, r)
    a:close()
  end)

  it("checks its arguments", function()
    local a, b = support.pair()
    local buf = socket.buffer(4)
    assert.has_error(function() b:recv_into("abcd") end)
    assert.has_error(function() b:recv_into(buf, 5) end)
    assert.has_error(function() b:recv_into(buf, -1) end)
    assert.has_error(function() b:recv_into(buf, 1, "x") end)
    assert.has_error(function() b.recv_into(buf, buf) end)
    a:close(); b:close()
    assert.has_error(function() b:recv_into(buf) end, "attempt to use a closed socket")
  end)

  it("recvfrom_into returns the count and the sender", function()
    local a, b = support.pair("udp")
    local buf = socket.buffer(100)
    assert(a:send("datagram"))
    local n, addr = b:recvfrom_into(buf)
    assert.equal(8, n)
    assert.equal("datagram", buf:sub(1, n))
    assert.same(a:getsockname().port, addr.port)
    a:close(); b:close()
  end)
end)

describe("send and sendall of a buffer", function()
  it("send a range (string.sub's rules), flags after it", function()
    local a, b = support.pair()
    local buf = socket.buffer("0123456789")
    assert.equal(3, a:send(buf, 2, 4))
    assert.is_true(a:sendall(buf, -2))
    assert.is_true(a:sendall(buf, 1, 1, 0))
    assert.is_true(a:sendall(buf, 5, 4))   -- empty
    assert.equal("123890", b:recv(100))
    assert.has_error(function() a:send(buf, "x") end)
    assert.has_error(function() a:send({}) end)
    assert.equal(2, a:send(42))                   -- a number goes as its text, as before
    assert.equal("42", b:recv(10))
    a:close(); b:close()
  end)
end)

describe("sendfile", function()
  local function file_with(data)
    local path = support.temp_file(data)
    return assert(io.open(path, "rb"))
  end

  it("sends a file intact and leaves it after the last byte", function()
    local data = support.blocks(3000000)
    local f = file_with(data)
    local client, server = support.pair("tcp")
    local got = drain(client)
    socket.spawn(function()
      assert.equal(#data, server:sendfile(f))
      server:close()
    end)
    support.run_tasks_within(support.BULK_RUN_LIMIT)
    assert.is_true(got[1] == data)
    assert.equal(#data, f:seek())
    f:close(); client:close()
  end)

  it("takes an offset and a count, and starts where the file stands", function()
    local data = support.blocks(100000)
    local f = file_with(data)
    local a, b = support.pair()
    assert.equal(1000, a:sendfile(f, 5000, 1000))
    assert.equal(6000, f:seek())
    assert.equal(data:sub(5001, 6000), support.recv_all(b, 1000))
    assert.equal(data:sub(6001, 6010), f:read(10))   -- the file reads on from there
    assert.equal(500, a:sendfile(f, nil, 500))        -- from where the file stands
    assert.equal(data:sub(6011, 6510), support.recv_all(b, 500))
    assert.equal(0, a:sendfile(f, #data))             -- nothing past the end
    f:close(); a:close(); b:close()
  end)

  it("falls back to read and send where sendfile(2) refuses the file", function()
    -- /proc/PID/environ has no splice_read: sendfile(2) gives EINVAL
    local f = assert(io.open("/proc/self/environ", "rb"))
    local want = f:read("a")
    local a, b = support.pair()
    assert.is_true(#want > 10)
    assert.equal(#want - 3, a:sendfile(f, 3))
    assert.equal(#want, f:seek())
    assert.equal(want:sub(4), support.recv_all(b, #want - 3))
    f:close(); a:close(); b:close()
  end)

  -- 4 MB once fitted in what loopback TCP buffers take from a peer that
  -- does not read (4,160,512 bytes here on some runs): 16 MB cannot.
  it("honours the timeout and reports what went", function()
    local f = file_with(support.blocks(16000000))
    local a, b = support.pair("tcp")
    a:settimeout(0.3)
    local dt, ok, msg, code, sent = timed(a.sendfile, a, f)
    assert_timeout(ok, msg, code)
    assert.is_true(sent > 0 and sent < 16000000)
    assert.equal(sent, f:seek())
    assert.is_true(dt >= 0.29 and dt < 1.5, "took " .. dt)
    f:close(); a:close(); b:close()
  end)

  it("errors as nil, msg, errno; bad arguments raise", function()
    local f = file_with("abc")
    local a, b = support.pair()
    b:close()
    local ok, msg, code, sent = a:sendfile(f)
    assert.is_nil(ok)
    assert.equal(E.EPIPE, code)
    assert.equal("string", type(msg))
    assert.equal(0, sent)
    assert.has_error(function() a:sendfile("path") end)
    assert.has_error(function() a:sendfile(f, -1) end)
    assert.has_error(function() a:sendfile(f, 0, -1) end)
    f:close()
    assert.has_error(function() a:sendfile(f) end)
    local u, v = support.pair("udp")
    assert.has_error(function() u:sendfile(io.stdin) end)
    a:close(); u:close(); v:close()
    assert.has_error(function() a:sendfile(io.stdin) end)
  end)
end)

describe("socket.relay", function()
  -- Two client/server pairs: left talks to relay's a, right to its b.
  local function pairs2()
    local left, a = support.pair("tcp")
    local b, right = support.pair("tcp")
    return left, a, b, right
  end

  it("relays large streams both ways at once, intact, in a task", function()
    local left, a, b, right = pairs2()
    local up, down = support.blocks(6000000), support.blocks(3000000):reverse()
    feed(left, up); feed(right, down)
    local at_right, at_left = drain(right), drain(left)
    local r
    socket.spawn(function() r = table.pack(socket.relay(a, b)) end)
    support.run_tasks_within(support.BULK_RUN_LIMIT)
    assert.same({ n = 2, #up, #down }, r)
    assert.is_true(at_right[1] == up)
    assert.is_true(at_left[1] == down)
    for _, s in ipairs({ left, a, b, right }) do s:close() end
  end)

  it("passes a half-close on in each direction and goes on the other way", function()
    for _, first in ipairs({ "left", "right" }) do
      local left, a, b, right = pairs2()
      local ends = { left = left, right = right }
      local other = first == "left" and right or left
      local r, reply
      socket.spawn(function() r = table.pack(socket.relay(a, b)) end)
      socket.spawn(function()
        ends[first]:shutdown(socket.SHUT_WR)      -- one side is done talking...
        assert.equal("", other:recv(10))         -- ...the other sees the end
        assert(other:sendall("still here"))      -- and still talks back
        other:shutdown(socket.SHUT_WR)
        reply = support.recv_all(ends[first])
      end)
      support.run_tasks()
      assert.equal("still here", reply)
      assert.same(first == "left" and { n = 2, 0, 10 } or { n = 2, 10, 0 }, r)
      for _, s in ipairs({ left, a, b, right }) do s:close() end
    end
  end)

  it("works outside a task while tasks feed it", function()
    local left, a, b, right = pairs2()
    local data = support.blocks(2000000)
    feed(left, data); feed(right, "")
    local got = drain(right)
    local n1, n2 = socket.relay(a, b)
    support.run_tasks()
    assert.equal(#data, n1)
    assert.equal(0, n2)
    assert.is_true(got[1] == data)
    for _, s in ipairs({ left, a, b, right }) do s:close() end
  end)

  it("relays unix stream sockets too", function()
    local left, a = support.pair()
    local b, right = support.pair()
    local data = support.blocks(1000000)
    feed(left, data); feed(right, "back")
    local got, back = drain(right), drain(left)
    assert.same({ #data, 4 }, { socket.relay(a, b) })
    support.run_tasks()
    assert.is_true(got[1] == data)
    assert.equal("back", back[1])
    for _, s in ipairs({ left, a, b, right }) do s:close() end
  end)

  it("honours its timeout and a deadline scope", function()
    local left, a, b, right = pairs2()
    local dt, ok, msg, code, n1, n2 = timed(socket.relay, a, b, 0.2)
    assert_timeout(ok, msg, code)
    assert.same({ 0, 0 }, { n1, n2 })
    assert.is_true(dt >= 0.19 and dt < 1.5, "took " .. dt)
    local r
    socket.spawn(function()
      r = table.pack(socket.timeout(0.2, function() return socket.relay(a, b) end))
    end)
    dt = timed(support.run_tasks)
    assert.equal("timeout", r[2])
    assert.is_true(dt >= 0.19 and dt < 1.5, "took " .. dt)
    for _, s in ipairs({ left, a, b, right }) do s:close() end
  end)

  it("ends with nil, 'closed' when a socket is closed under it", function()
    local left, a, b, right = pairs2()
    local r
    socket.spawn(function() r = table.pack(socket.relay(a, b)) end)
    socket.spawn(function() b:close() end)
    support.run_tasks()
    assert.same({ n = 5, nil, "closed", E.EBADF, 0, 0 }, r)
    for _, s in ipairs({ left, a, right }) do s:close() end
  end)

  it("ends with nil, msg, errno when a peer resets its connection", function()
    local left, a, b, right = pairs2()
    right:setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, string.pack("ii", 1, 0))
    right:close()                                  -- an RST to b
    assert(left:sendall("lost"))
    local ok, msg, code = socket.relay(a, b, 2)
    assert.is_nil(ok)
    assert.equal("string", type(msg))
    assert.is_true(code == E.ECONNRESET or code == E.EPIPE, tostring(code))
    for _, s in ipairs({ left, a, b }) do s:close() end
  end)

  it("leaves no descriptor behind: done, failed, timed out or cancelled", function()
    local left, a, b, right = pairs2()
    local before = support.count_fds()
    feed(left, "x"); feed(right, "y")
    drain(left); drain(right)
    assert.same({ 1, 1 }, { socket.relay(a, b) })
    support.run_tasks()
    assert.equal(before, support.count_fds())
    for _, s in ipairs({ left, a, b, right }) do s:close() end
    left, a, b, right = pairs2()
    before = support.count_fds()
    assert.is_nil(socket.relay(a, b, 0.05))
    assert.equal(before, support.count_fds())
    local t = socket.spawn(function() socket.relay(a, b) end)
    socket.spawn(function() t:cancel() end)
    support.run_tasks()
    assert.equal("cancelled", t:status())
    collectgarbage(); collectgarbage()
    assert.equal(before, support.count_fds())
    for _, s in ipairs({ left, a, b, right }) do s:close() end
  end)

  it("checks its arguments", function()
    local left, a, b, right = pairs2()
    assert.has_error(function() socket.relay(a) end)
    assert.has_error(function() socket.relay(a, "b") end)
    assert.has_error(function() socket.relay(a, a) end)
    assert.has_error(function() socket.relay(a, b, -1) end)
    local u = support.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert.has_error(function() socket.relay(a, u) end)
    u:close()
    right:close()
    assert.has_error(function() socket.relay(a, right) end, "attempt to use a closed socket")
    for _, s in ipairs({ left, a, b }) do s:close() end
  end)
end)

-- msg_spec: sendmsg/recvmsg with ancillary data (MSG_TRUNC/MSG_CTRUNC
-- reported), socket.send_fds/recv_fds (the received descriptor works and
-- is close-on-exec), timeouts, EPIPE without SIGPIPE, misuse and failures.
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

-- Close received descriptors (integers) by wrapping them.
local function close_fds(fds)
  for _, fd in ipairs(fds) do assert(socket.socket(nil, nil, nil, fd)):close() end
end

describe("sendmsg and recvmsg", function()
  it("send a list of buffers as one datagram", function()
    local a, b = support.pair("socketpair_dgram")
    assert.are.equal(11, a:sendmsg({"hello", " ", "world"}))
    local data, anc, flags, addr = b:recvmsg(100)
    assert.are.equal("hello world", data)
    assert.are.same({}, anc)
    assert.are.equal(0, flags)
    assert.are.equal("", addr)          -- an unnamed unix peer, as recvfrom
    assert.are.equal(3, a:sendmsg("one"))   -- a single string is a list of one
    assert.are.equal("one", (b:recvmsg(100)))
    a:close(); b:close()
  end)

  it("report MSG_TRUNC when a datagram is bigger than bufsize", function()
    local a, b = support.pair("socketpair_dgram")
    assert(a:sendmsg({string.rep("x", 100)}))
    local data, _, flags = b:recvmsg(10)
    assert.are.equal(string.rep("x", 10), data)
    assert.are_not.equal(0, flags & socket.MSG_TRUNC)
    -- a datagram that fits is not flagged
    assert(a:sendmsg({"small"}))
    data, _, flags = b:recvmsg(10)
    assert.are.equal("small", data)
    assert.are.equal(0, flags & socket.MSG_TRUNC)
    a:close(); b:close()
  end)

  it("send to an address over UDP and receive the sender's address", function()
    local a, b = support.bound("udp"), support.bound("udp")
    assert.are.equal(4, b:sendmsg({"ud", "p!"}, nil, 0, a:getsockname()))
    local data, anc, flags, addr = a:recvmsg(1500)
    assert.are.equal("udp!", data)
    assert.are.same({}, anc)
    assert.are.equal(0, flags)
    assert.are.equal("127.0.0.1", addr.host)
    assert.are.equal(b:getsockname().port, addr.port)
    -- the host, port form of an address is not taken here: one argument
    a:close(); b:close()
  end)

  it("send to a unix path from an unnamed socket: the address is ''", function()
    local path = support.temp_path()
    local a = assert(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
    local b = assert(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
    a:settimeout(2)
    assert(a:bind(path))
    assert(b:sendmsg({"to path"}, {}, 0, path))
    local data, _, _, addr = a:recvmsg(100)
    assert.are.equal("to path", data)
    assert.are.equal("", addr)
    a:close(); b:close()
  end)

  it("round-trip SCM_RIGHTS ancillary data", function()
    local a, b = support.pair("socketpair_dgram")
    local x, y = support.pair()
    local anc = {{socket.SOL_SOCKET, socket.SCM_RIGHTS, string.pack("i", x:fileno())}}
    assert.are.equal(3, a:sendmsg({"fds"}, anc))
    local data, got, flags = b:recvmsg(10, 64)
    assert.are.equal("fds", data)
    assert.are.equal(0, flags)
    assert.are.equal(1, #got)
    assert.are.equal(socket.SOL_SOCKET, got[1][1])
    assert.are.equal(socket.SCM_RIGHTS, got[1][2])
    assert.are.equal(4, #got[1][3])
    local fd = string.unpack("i", got[1][3])
    assert.are_not.equal(x:fileno(), fd)
    assert.is_true(support.is_cloexec(fd))   -- MSG_CMSG_CLOEXEC
    local x2 = support.socket(nil, nil, nil, fd)
    assert(x2:send("via copy"))
    assert.are.equal("via copy", y:recv(100))
    x2:close(); x:close(); y:close(); a:close(); b:close()
  end)

  it("receive SCM_CREDENTIALS the kernel attaches (SO_PASSCRED)", function()
    local a, b = support.pair("socketpair_dgram")
    assert(b:setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, true))
    assert(a:sendmsg({"who"}))
    local data, anc = b:recvmsg(10, 64)
    assert.are.equal("who", data)
    assert.are.equal(1, #anc)
    assert.are.same({socket.SOL_SOCKET, socket.SCM_CREDENTIALS}, {anc[1][1], anc[1][2]})
    local pid = string.unpack("i4", anc[1][3])
    local f = assert(io.open("/proc/self/stat"))
    local mypid = tonumber(f:read("a"):match("^(%d+)"))
    f:close()
    assert.are.equal(mypid, pid)
    a:close(); b:close()
  end)

  it("report MSG_CTRUNC when the control buffer is too small", function()
    local a, b = support.pair("socketpair_dgram")
    local x, y = support.pair("socketpair_dgram")
    local fds = string.pack("iii", x:fileno(), y:fileno(), x:fileno())
    assert(a:sendmsg({"3 fds"}, {{socket.SOL_SOCKET, socket.SCM_RIGHTS, fds}}))
    local data, anc, flags = b:recvmsg(10, 20)   -- room for one descriptor only
    assert.are.equal("3 fds", data)
    assert.are_not.equal(0, flags & socket.MSG_CTRUNC)
    for _, item in ipairs(anc) do   -- close what did arrive
      for i = 1, #item[3] // 4 do close_fds({(string.unpack("i", item[3], 4 * i - 3))}) end
    end
    x:close(); y:close(); a:close(); b:close()
  end)

  it("honour the timeout, settimeout(0) and MSG_DONTWAIT", function()
    local a, b = support.pair("socketpair_dgram")
    a:settimeout(0.1)
    local t0 = socket.gettime()
    assert.are.same({nil, "timeout", E.ETIMEDOUT}, {a:recvmsg(10)})
    local dt = socket.gettime() - t0
    assert.is_true(dt >= 0.09 and dt < 1.5, "took " .. dt)
    a:settimeout(0)
    local data, msg, code = a:recvmsg(10)
    assert.is_nil(data)
    assert.are.equal(E.EAGAIN, code)
    assert.is_string(msg)
    a:settimeout(nil)   -- blocking, but MSG_DONTWAIT must not wait
    data, msg, code = a:recvmsg(10, 0, socket.MSG_DONTWAIT)
    assert.is_nil(data)
    assert.are.equal(E.EAGAIN, code)
    a:close(); b:close()
  end)

  it("return EPIPE to a peer that went away, without SIGPIPE", function()
    local a, b = support.pair()
    b:close()
    assert.are.same({nil, "Broken pipe", E.EPIPE}, {a:sendmsg({"anyone?"})})
    a:close()
  end)

  it("raise on misuse", function()
    local a, b = support.pair("socketpair_dgram")
    assert.has_error(function() a:sendmsg(42) end,
      "bad argument #1 to 'sendmsg' (list of strings expected, got number)")
    assert.has_error(function() a:sendmsg({"ok", 42}) end,
      "bad argument #1 to 'sendmsg' (buffer #2 is not a string)")
    assert.has_error(function() a:sendmsg({"x"}, {{1, 1}}) end,
      "bad argument #2 to 'sendmsg' (ancillary item #1 must be {level, type, data})")
    assert.has_error(function() a:sendmsg({"x"}, {"no"}) end,
      "bad argument #2 to 'sendmsg' (ancillary item #1 is not a table)")
    assert.has_error(function() a:sendmsg({"x"}, nil, "flags") end,
      "bad argument #3 to 'sendmsg' (number expected, got string)")
    assert.has_error(function() a:recvmsg() end,
      "bad argument #1 to 'recvmsg' (number expected, got no value)")
    assert.has_error(function() a:recvmsg(-1) end,
      "bad argument #1 to 'recvmsg' (integer out of range)")
    assert.has_error(function() a:recvmsg(10, -5) end,
      "bad argument #2 to 'recvmsg' (integer out of range)")
    a:close(); b:close()
  end)

  it("return nil, message, errno when the OS refuses", function()
    local s = assert(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
    local ok, msg, code = s:sendmsg({"nowhere"})   -- unconnected, no address
    assert.is_nil(ok)
    assert.are.equal(E.ENOTCONN, code)
    assert.are.equal("Transport endpoint is not connected", msg)
    s:close()
    local a, b = support.pair("socketpair_dgram")
    ok, msg, code = a:sendmsg({"x"}, {{socket.SOL_SOCKET, 9999, "junk"}})
    assert.is_nil(ok)
    assert.are.equal(E.EINVAL, code)
    assert.is_string(msg)
    a:close(); b:close()
  end)
end)

describe("socket.CMSG_LEN and socket.CMSG_SPACE", function()
  it("give the sizes of the C macros (Linux x86-64/aarch64 values)", function()
    assert.are.equal(16, socket.CMSG_LEN(0))
    assert.are.equal(20, socket.CMSG_LEN(4))
    assert.are.equal(24, socket.CMSG_SPACE(4))
    assert.are.equal(32, socket.CMSG_SPACE(12))
  end)

  it("size a control buffer that holds exactly n descriptors", function()
    local a, b = support.pair("socketpair_dgram")
    local x, y = support.pair("socketpair_dgram")
    assert(a:sendmsg({"2"}, {{socket.SOL_SOCKET, socket.SCM_RIGHTS, string.pack("ii", x:fileno(), y:fileno())}}))
    local _, anc, flags = b:recvmsg(10, socket.CMSG_SPACE(2 * 4))
    assert.are.equal(0, flags & socket.MSG_CTRUNC)
    assert.are.equal(8, #anc[1][3])
    local f1, f2 = string.unpack("ii", anc[1][3])
    close_fds({f1, f2})
    x:close(); y:close(); a:close(); b:close()
  end)

  it("raise on a negative length", function()
    assert.has_error(function() socket.CMSG_SPACE(-1) end,
      "bad argument #1 to 'CMSG_SPACE' (length out of range)")
  end)
end)

describe("socket.send_fds and socket.recv_fds", function()
  it("pass descriptors that work on the other side", function()
    local a, b = support.pair("socketpair_dgram")
    local x, y = support.pair()
    assert.are.equal(4, socket.send_fds(a, "fds!", {x, y:fileno()}))
    local data, fds, flags, addr = socket.recv_fds(b, 100, 4)
    assert.are.equal("fds!", data)
    assert.are.equal(2, #fds)
    assert.are.equal(0, flags)
    assert.are.equal("", addr)
    for _, fd in ipairs(fds) do
      assert.is_true(math.type(fd) == "integer")
      assert.is_true(support.is_cloexec(fd))
    end
    local x2 = assert(socket.socket(nil, nil, nil, fds[1]))
    local y2 = assert(socket.socket(nil, nil, nil, fds[2]))
    x2:settimeout(2); y2:settimeout(2)
    assert(x2:send("ping"))
    assert.are.equal("ping", y2:recv(10))   -- x's copy talks to y's copy
    assert(y:send("pong"))
    assert.are.equal("pong", x:recv(10))
    x2:close(); y2:close(); x:close(); y:close(); a:close(); b:close()
  end)

  it("an empty list sends plain data", function()
    local a, b = support.pair("socketpair_dgram")
    assert.are.equal(5, socket.send_fds(a, "plain", {}))
    local data, fds = socket.recv_fds(b, 100, 4)
    assert.are.equal("plain", data)
    assert.are.same({}, fds)
    a:close(); b:close()
  end)

  it("maxfds 0 drops the descriptors and says MSG_CTRUNC", function()
    local a, b = support.pair("socketpair_dgram")
    assert(socket.send_fds(a, "x", {a}))
    local data, fds, flags = socket.recv_fds(b, 100, 0)
    assert.are.equal("x", data)
    assert.are.same({}, fds)
    assert.are_not.equal(0, flags & socket.MSG_CTRUNC)
    a:close(); b:close()
  end)

  it("send to an address", function()
    local path = support.temp_path()
    local a = assert(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
    local b = assert(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
    a:settimeout(2)
    assert(a:bind(path))
    assert(socket.send_fds(b, "addressed", {b}, path))
    local data, fds, _, addr = socket.recv_fds(a, 100, 1)
    assert.are.equal("addressed", data)
    assert.are.equal(1, #fds)
    assert.are.equal("", addr)
    close_fds(fds)
    a:close(); b:close()
  end)

  it("recv_fds honours the timeout", function()
    local a, b = support.pair("socketpair_dgram")
    b:settimeout(0.05)
    assert.are.same({nil, "timeout", E.ETIMEDOUT}, {socket.recv_fds(b, 10, 1)})
    a:close(); b:close()
  end)

  it("raise on misuse", function()
    local a, b = support.pair("socketpair_dgram")
    assert.has_error(function() socket.send_fds(a, "x", {"3"}) end,
      "bad argument #3 to 'send_fds' (descriptors must be open sockets or integers >= 0)")
    assert.has_error(function() socket.send_fds(a, "x", {-1}) end,
      "bad argument #3 to 'send_fds' (descriptors must be open sockets or integers >= 0)")
    assert.has_error(function() socket.send_fds(a, "x", 3) end,
      "bad argument #3 to 'send_fds' (table expected, got number)")
    assert.has_error(function() socket.send_fds("a", "x", {}) end,
      "bad argument #1 to 'send_fds' (luasock.socket expected, got string)")
    assert.has_error(function() socket.recv_fds(b, 10, -1) end,
      "bad argument #3 to 'recv_fds' (maxfds out of range (0..253))")
    assert.has_error(function() socket.recv_fds(b) end,
      "bad argument #2 to 'recv_fds' (number expected, got no value)")
    a:close(); b:close()
  end)

  it("return nil, message, EBADF for a descriptor that is not open", function()
    local a, b = support.pair("socketpair_dgram")
    local s = assert(socket.socket())
    local fd = s:fileno()
    s:close()
    assert.is_false(support.fd_open(fd))
    assert.are.same({nil, "Bad file descriptor", E.EBADF}, {socket.send_fds(a, "x", {fd})})
    a:close(); b:close()
  end)

  it("inside a task, recv_fds waits without stopping the other tasks", function()
    if not (socket.spawn and socket.run) then
      return pending("tasks (socket.spawn/run) are not available in this build yet")
    end
    local a, b = support.pair("socketpair_dgram")
    local got
    socket.spawn(function()
      local data, fds = assert(socket.recv_fds(b, 10, 1))
      got = data .. #fds
      close_fds(fds)
    end)
    socket.spawn(function() assert(socket.send_fds(a, "late", {a})) end)
    local ok, err = socket.run()
    assert(ok, err)
    assert.are.equal("late1", got)
    a:close(); b:close()
  end)

  -- Story: sendmsg read the ancillary list twice through
  -- lua_geti (which runs __index), once to size the control buffer and
  -- once to copy into it: an item whose data grew between the two reads
  -- overflowed the heap (ASan: heap-buffer-overflow WRITE in fill_anc).
  -- Each item is now read once, with raw access, into a private copy that
  -- both sizes and fills the buffer.
  it("reads each ancillary item once, raw: an item that changes cannot overflow", function()
    local a, b = support.pair("socketpair_dgram")
    local calls = 0
    local shifty = setmetatable({}, {__index = function(_, k)
      if k == 1 then return socket.SOL_SOCKET elseif k == 2 then return 12345 end
      calls = calls + 1
      return calls == 1 and "" or string.rep("x", 100000)
    end})
    assert.has_error(function() a:sendmsg({"hi"}, {shifty}) end,
      "bad argument #2 to 'sendmsg' (ancillary item #1 must be {level, type, data})")
    assert.equal(0, calls)                    -- no metamethod ran
    -- a list whose items come from __index is not read either
    local proxy = setmetatable({}, {__index = function() return {socket.SOL_SOCKET, 1, ""} end,
                                    __len = function() return 1 end})
    assert.equal(2, a:sendmsg({"hi"}, proxy))   -- raw length 0: no ancillary data
    assert.equal("hi", (b:recvmsg(10)))
    a:close(); b:close()
  end)

  -- Story: flags were range-checked here but cast to int in
  -- sockio.c; both now use aux_checkint.  An earlier fix had MSG_DONTWAIT work
  -- here already: it still does.
  it("raises on flags out of range; MSG_DONTWAIT does not wait", function()
    local a, b = support.pair("socketpair_dgram")
    assert.has_error(function() a:sendmsg({"x"}, nil, 2^32) end,
      "bad argument #3 to 'sendmsg' (integer out of range)")
    local t0 = socket.gettime()
    assert.are.same({nil, "Resource temporarily unavailable", E.EAGAIN},
                    {b:recvmsg(10, 0, socket.MSG_DONTWAIT)})
    assert.is_true(socket.gettime() - t0 < 0.5)
    a:close(); b:close()
  end)
end)

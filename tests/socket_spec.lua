-- socket_spec: the socket object of socket.c — creation of every family
-- and type, close-on-exec, close/__gc/<close>, the closed-socket rule for
-- every method, read-only fields and __tostring.  Its settings are
-- options_spec's; the module's other functions module_spec's.
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

-- Every method of the socket metatable, by name: the functions of its
-- __index table (which also holds the fields family, type and proto).
local function methods()
  local s = socket.socket()
  local index = getmetatable(s).__index
  s:close()
  assert(type(index) == "table", "__index is not a table")
  local t = {}
  for name, v in pairs(index) do
    if type(v) == "function" then t[name] = v end
  end
  return t
end

describe("socket.socket", function()
  it("creates TCP and UDP over IPv4 with close-on-exec, non-blocking fds", function()
    for _, ty in ipairs{socket.SOCK_STREAM, socket.SOCK_DGRAM} do
      local s = support.socket(socket.AF_INET, ty)
      assert.are.equal(socket.AF_INET, s.family)
      assert.are.equal(ty, s.type)
      assert.are.equal(0, s.proto)
      assert.is_true(support.is_cloexec(s:fileno()))
      assert.is_true(support.is_nonblocking(s:fileno()))
      s:close()
    end
  end)

  it("defaults to AF_INET, SOCK_STREAM, 0", function()
    local s = support.socket()
    assert.are.same({socket.AF_INET, socket.SOCK_STREAM, 0}, {s.family, s.type, s.proto})
    assert.are.equal(socket.SOCK_STREAM, s:getsockopt(socket.SOL_SOCKET, socket.SO_TYPE))
    s:close()
  end)

  it("exchanges data over every family and type this machine has", function()
    -- TCP and UDP over 127.0.0.1 (and ::1 below), unix stream, dgram, seqpacket
    local function stream_roundtrip(family, addr, type)
      type = type or socket.SOCK_STREAM
      local srv = support.socket(family, type)
      assert(srv:bind(addr))
      assert(srv:listen())
      local c = support.socket(family, type)
      assert(c:connect(srv:getsockname()))
      local conn = assert(srv:accept())
      conn:settimeout(2)
      assert.is_true(support.is_cloexec(conn:fileno()))
      assert(c:sendall("ping"))
      assert.are.equal("ping", conn:recv(10))
      conn:close(); c:close(); srv:close()
    end
    local function dgram_roundtrip(family, type, addr)
      local a = support.socket(family, type)
      assert(a:bind(addr))
      local b = support.socket(family, type)
      assert(b:connect(a:getsockname()))
      assert(b:send("datagram"))
      assert.are.equal("datagram", a:recv(100))
      a:close(); b:close()
    end
    stream_roundtrip(socket.AF_INET, {"127.0.0.1", 0})
    dgram_roundtrip(socket.AF_INET, socket.SOCK_DGRAM, {"127.0.0.1", 0})
    stream_roundtrip(socket.AF_UNIX, support.temp_path())
    dgram_roundtrip(socket.AF_UNIX, socket.SOCK_DGRAM, support.abstract_name("socket-spec"))
    stream_roundtrip(socket.AF_UNIX, support.temp_path(), socket.SOCK_SEQPACKET)
  end)

  it("creates TCP and UDP over IPv6", function()
    local ok, why = support.has_ipv6()
    if not ok then return pending("IPv6 skipped: " .. why) end
    for _, ty in ipairs{socket.SOCK_STREAM, socket.SOCK_DGRAM} do
      local s = support.socket(socket.AF_INET6, ty)
      assert(s:bind({"::1", 0}))
      assert.are.equal(socket.AF_INET6, s.family)
      assert.are.equal(socket.AF_INET6, s:getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN))
      assert.matches("^socket %(fd %d+, AF_INET6, SOCK_%u+, %[::1%]:%d+%)$", tostring(s))
      s:close()
    end
  end)

  it("creates a SOCK_RAW ICMP socket (the echo itself is raw_spec's)", function()
    local s, msg, code = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    if not s and (code == E.EPERM or code == E.EACCES) then
      print("SOCK_RAW skipped: " .. msg .. " (no CAP_NET_RAW)")
      return pending("SOCK_RAW needs CAP_NET_RAW: " .. msg)
    end
    assert(s, msg)
    assert.are.same({socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP}, {s.family, s.type, s.proto})
    assert.are.equal(socket.IPPROTO_ICMP, s:getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))
    assert.is_true(support.is_cloexec(s:fileno()))
    assert.matches("^socket %(fd %d+, AF_INET, SOCK_RAW", tostring(s))
    s:close()
  end)

  it("raises on a wrong argument type", function()
    assert.has_error(function() socket.socket("inet") end,
      "bad argument #1 to 'socket' (number expected, got string)")
    assert.has_error(function() socket.socket(socket.AF_INET, 1.5) end,
      "bad argument #2 to 'socket' (number has no integer representation)")
  end)

  it("returns nil, message, errno when the OS refuses", function()
    local s, msg, code = socket.socket(12345)
    assert.is_nil(s)
    assert.are.equal(E.EAFNOSUPPORT, code)
    assert.are.equal("Address family not supported by protocol", msg)
    s, msg, code = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_UDP)
    assert.is_nil(s)
    assert.are.equal(E.EPROTONOSUPPORT, code)
    assert.is_string(msg)
  end)

  it("wraps an existing descriptor given as fileno, asking the kernel its kind", function()
    local a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    local fd = a:detach()
    assert.are.equal(-1, a:fileno())
    assert.are.equal("socket (closed)", tostring(a))
    assert.is_true(support.fd_open(fd))
    local w = assert(socket.socket(nil, nil, nil, fd))
    assert.are.same({socket.AF_UNIX, socket.SOCK_DGRAM, 0}, {w.family, w.type, w.proto})
    assert.are.equal(fd, w:fileno())
    w:settimeout(2)
    assert(b:send("x"))
    assert.are.equal("x", w:recv(1))
    w:close()
    assert.is_false(support.fd_open(fd))
    local s, msg, code = socket.socket(nil, nil, nil, fd)   -- no longer open
    assert.is_nil(s)
    assert.are.equal(E.EBADF, code)
    assert.are.equal("Bad file descriptor", msg)
    assert.has_error(function() socket.socket(nil, nil, nil, -1) end,
      "bad argument #4 to 'socket' (negative file descriptor)")
    b:close()
  end)

  it("dup() and socket.fromfd() make close-on-exec duplicates", function()
    local a, b = socket.socketpair()
    a:settimeout(1.5); b:settimeout(2)
    local d = assert(a:dup())
    assert.are_not.equal(a:fileno(), d:fileno())
    assert.are.same({a.family, a.type, a.proto, 1.5}, {d.family, d.type, d.proto, d:gettimeout()})
    assert.is_true(support.is_cloexec(d:fileno()))
    local f = assert(socket.fromfd(a:fileno()))
    assert.are.same({socket.AF_UNIX, socket.SOCK_STREAM}, {f.family, f.type})
    assert.is_true(support.is_cloexec(f:fileno()))
    a:close()   -- the duplicates still reach b
    assert(d:send("d"))
    assert(f:send("f"))
    local got = assert(b:recv(2))
    if #got < 2 then got = got .. assert(b:recv(1)) end
    assert.are.equal("df", got)
    d:close(); f:close(); b:close()
  end)

  it("dup() raises on a closed socket, fromfd on a bad argument", function()
    local s = support.socket()
    s:close()
    assert.has_error(function() s:dup() end, "attempt to use a closed socket")
    assert.has_error(function() socket.fromfd(-1) end,
      "bad argument #1 to 'fromfd' (negative file descriptor)")
    assert.has_error(function() socket.fromfd({}) end,
      "bad argument #1 to 'fromfd' (number expected, got table)")
  end)

  it("fromfd returns nil, message, errno for a descriptor that is not a socket", function()
    local s = support.socket()
    local fd = s:fileno()
    s:close()
    assert.are.same({nil, "Bad file descriptor", E.EBADF}, {socket.fromfd(fd)})
  end)

  it("methods raise on something that is not a socket", function()
    local s = support.socket()
    assert.has_error(function() s.close(42) end,
      "bad argument #1 to 'close' (luasock.socket expected, got number)")
    assert.has_error(function() s.settimeout({}, 1) end,
      "bad argument #1 to 'settimeout' (luasock.socket expected, got table)")
    -- other userdata: a file, a stream, an address, a socket's metatable
    -- given to a table; and from a continuation-less path (recv)
    local r = s:makefile("r")
    for _, other in ipairs{io.stdout, r, socket.getaddrinfo("127.0.0.1", 1)[1].address} do
      for _, m in ipairs{"recv", "sendall", "fileno", "close"} do
        local ok, err = pcall(s[m], other, "x")
        assert.is_false(ok)
        assert.matches("luasock.socket expected, got ", err, 1, true)
      end
    end
    local fake = setmetatable({}, getmetatable(s))
    assert.has_error(function() s.recv(fake, 1) end,
      "bad argument #1 to 'recv' (luasock.socket expected, got luasock.socket)")
    -- nor with a socket's metatable forced on it (debug.setmetatable)
    local f = io.tmpfile()
    local fmeta = getmetatable(f)
    debug.setmetatable(f, getmetatable(s))
    local ok, err = pcall(s.recv, f, 1)
    debug.setmetatable(f, fmeta)
    f:close()
    assert.is_false(ok)
    assert.matches("luasock.socket expected", err, 1, true)
    local u = support.socket(socket.AF_INET, socket.SOCK_DGRAM)
    local umeta = getmetatable(u)
    debug.setmetatable(u, getmetatable(s))   -- a socket of another kind's
    ok, err = pcall(s.fileno, u)
    debug.setmetatable(u, umeta)
    assert.is_false(ok)
    assert.matches("luasock.socket expected", err, 1, true)
    u:close()
    r:close()
    s:close()
  end)

  it("set_inheritable lets a program run by os.execute have the descriptor", function()
    local a, b = socket.socketpair()
    b:settimeout(2)
    assert.is_false(a:get_inheritable())
    local cmd = ("test -e /proc/self/fd/%d"):format(a:fileno())
    assert.is_nil(os.execute(cmd))          -- close-on-exec: the shell lacks it
    assert.is_true(a:set_inheritable(true))
    assert.is_true(a:get_inheritable())
    assert.is_false(support.is_cloexec(a:fileno()))
    assert.is_true(os.execute(cmd))
    assert.is_true(os.execute(("printf inherited >&%d"):format(a:fileno())))
    assert.are.equal("inherited", b:recv(100))
    assert.is_true(a:set_inheritable(false))
    assert.is_false(a:get_inheritable())
    assert.has_error(function() a:set_inheritable(1) end,
      "bad argument #1 to 'set_inheritable' (boolean expected, got number)")
    a:close(); b:close()
  end)

  it("accepts SOCK_NONBLOCK and SOCK_CLOEXEC in type, as Python", function()
    local s = support.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    assert.are.equal(socket.SOCK_STREAM, s.type)
    s:close()
    s = assert(socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK))
    assert.are.equal(socket.SOCK_DGRAM, s.type)
    assert.are.equal(0, s:gettimeout())
    s:close()
  end)
end)

describe("closing", function()
  it("close() twice is harmless and fileno() is then -1", function()
    local s = support.socket()
    local fd = s:fileno()
    assert.is_true(support.fd_open(fd))
    assert.is_true(s:close())
    assert.is_true(s:close())
    assert.are.equal(-1, s:fileno())
    assert.is_false(support.fd_open(fd))
    assert.are.equal("socket (closed)", tostring(s))
  end)

  it("every other method raises on a closed socket", function()
    local s = support.socket()
    s:close()
    local checked = 0
    for name, fn in pairs(methods()) do
      if name ~= "close" and name ~= "fileno" and name ~= "detach" then
        local ok, err = pcall(fn, s)
        assert.is_false(ok, name .. " did not raise on a closed socket")
        assert.matches("attempt to use a closed socket", err, 1, true, name)
        checked = checked + 1
      end
    end
    assert.is_true(checked >= 20, "only " .. checked .. " methods found")
    -- and with plausible arguments, so no argument check comes first
    local args = {bind = {{"127.0.0.1", 0}}, connect = {{"127.0.0.1", 1}},
      connect_ex = {{"127.0.0.1", 1}}, recv = {10}, send = {"x"}, sendall = {"x"},
      recvfrom = {10}, sendto = {"x", {"127.0.0.1", 1}}, setsockopt = {1, 2, 1},
      getsockopt = {1, 2}, settimeout = {1}, setblocking = {true}, shutdown = {2},
      sendmsg = {{"x"}}, recvmsg = {10}, makefile = {"r"}}
    for name, a in pairs(args) do
      assert.has_error(function() s[name](s, table.unpack(a)) end,
        "attempt to use a closed socket", name)
    end
    assert.has_error(function() socket.send_fds(s, "x", {}) end, "attempt to use a closed socket")
    assert.has_error(function() socket.recv_fds(s, 1, 1) end, "attempt to use a closed socket")
    assert.has_error(function() socket.select({s}, {}) end, "attempt to use a closed socket")
  end)

  it("__gc releases the descriptor", function()
    local fd
    do
      local s = support.socket()
      fd = s:fileno()
    end
    assert.is_true(support.fd_open(fd))
    collectgarbage()
    collectgarbage()
    assert.is_false(support.fd_open(fd))
  end)

  it("<close> releases the descriptor at the end of the block", function()
    local fd, keep
    do
      local s <close> = support.socket()
      fd, keep = s:fileno(), s
      assert.is_true(support.fd_open(fd))
    end
    assert.is_false(support.fd_open(fd))
    assert.are.equal(-1, keep:fileno())
    assert.are.equal("socket (closed)", tostring(keep))
  end)

  it("<close> in one task tells a task waiting on that socket: closed", function()
    -- in a child with a time limit: a waiter that is never woken would hang run()
    if not (socket.spawn and socket.run) then
      return pending("tasks (socket.spawn/run) are not available in this build yet")
    end
    local script = support.temp_file([[
      local socket = require "socket"
      local a, b = socket.socketpair()
      a:settimeout(2)
      local result
      socket.spawn(function() result = {a:recv(10)} end)
      socket.spawn(function()
        local s <close> = a
      end)
      assert(socket.run())
      print(result[1], result[2], result[3], a:fileno())
    ]])
    local r = support.run({ support.LUASOCK, script }, { limit = 5, stderr = "out" })
    assert.are.equal(0, r.code, r.out)
    assert.are.equal(("nil\tclosed\t%d\t-1\n"):format(E.EBADF), r.out)
  end)

  it("a closed socket never touches the descriptor number it had", function()
    -- the number is reused by the next socket; the closed object must
    -- raise rather than send on someone else's descriptor
    local a, b = socket.socketpair()
    local fd = a:fileno()
    a:close()
    local c = support.socket()    -- likely reuses fd
    assert.has_error(function() a:send("x") end, "attempt to use a closed socket")
    assert.are_not.equal(fd, a:fileno())
    c:close(); b:close()
  end)
end)

describe("fields", function()
  it("family, type and proto are read-only", function()
    local s = support.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert.are.same({socket.AF_INET, socket.SOCK_DGRAM, 0}, {s.family, s.type, s.proto})
    assert.has_error(function() s.family = socket.AF_INET6 end,
      "socket field 'family' is read-only")
    assert.has_error(function() s.type = 1 end, "socket field 'type' is read-only")
    assert.has_error(function() s.proto = 1 end, "socket field 'proto' is read-only")
    assert.has_error(function() s.anything = 1 end, "socket field 'anything' is read-only")
    assert.are.equal(socket.AF_INET, s.family)
    assert.is_nil(s.nosuchfield)
    s:close()
    assert.are.equal(socket.AF_INET, s.family)   -- still readable once closed
  end)

  it("each kind of socket has its own fields and the same methods", function()
    local kinds = {{socket.AF_INET, socket.SOCK_STREAM, 0},
      {socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP},
      {socket.AF_UNIX, socket.SOCK_DGRAM, 0}, {socket.AF_UNIX, socket.SOCK_STREAM, 0}}
    local socks = {}
    for i, k in ipairs(kinds) do
      socks[i] = support.socket(k[1], k[2], k[3])
      socks[#kinds + i] = support.socket(k[1], k[2], k[3])   -- a second of each kind
    end
    for i, s in ipairs(socks) do
      local k = kinds[(i - 1) % #kinds + 1]
      assert.are.same(k, {s.family, s.type, s.proto})
      assert.are.equal(socks[1].recv, s.recv)
      assert.are.equal(socks[1].sendall, s.sendall)
      assert.is_nil(s.nosuchfield)
      assert.is_nil(s[1])
    end
    -- sockets made by accept, dup and socketpair have their kind's fields
    local srv = support.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    assert(srv:bind({"127.0.0.1", 0}))
    assert(srv:listen())
    local c = support.socket()
    assert(c:connect(srv:getsockname()))
    local conn = assert(srv:accept())
    assert.are.same({socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP},
      {conn.family, conn.type, conn.proto})
    local d = conn:dup()
    assert.are.same({conn.family, conn.type, conn.proto}, {d.family, d.type, d.proto})
    local a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    assert.are.same({socket.AF_UNIX, socket.SOCK_SEQPACKET, 0}, {b.family, b.type, b.proto})
    for _, s in ipairs{srv, c, conn, d, a, b, table.unpack(socks)} do s:close() end
  end)

  it("kinds no socket has any more are not kept", function()
    local kinds = debug.getregistry()["luasock.socket.kinds"]
    local function count()
      collectgarbage()
      collectgarbage()
      local n = 0
      for _ in pairs(kinds) do n = n + 1 end
      return n
    end
    local before = count()
    for family = 1000, 1999 do   -- no such families: socket() fails
      local s, err = socket.socket(family, socket.SOCK_STREAM, family)
      assert.is_nil(s)
      assert.is_string(err)
    end
    assert.is_true(count() <= before + 1, "kinds kept: " .. count() - before)
  end)
end)

describe("__tostring", function()
  it("names fd, family, type and both addresses of a TCP connection", function()
    local srv = support.socket()
    assert(srv:bind({"127.0.0.1", 0}))
    assert(srv:listen())
    local port = srv:getsockname().port
    assert.are.equal(("socket (fd %d, AF_INET, SOCK_STREAM, 127.0.0.1:%d)"):format(srv:fileno(), port),
      tostring(srv))
    local c = support.socket()
    assert(c:connect({"127.0.0.1", port}))
    local cport = c:getsockname().port
    assert.are.equal(("socket (fd %d, AF_INET, SOCK_STREAM, 127.0.0.1:%d -> 127.0.0.1:%d)")
      :format(c:fileno(), cport, port), tostring(c))
    local conn = assert(srv:accept())
    assert.are.equal(("socket (fd %d, AF_INET, SOCK_STREAM, 127.0.0.1:%d -> 127.0.0.1:%d)")
      :format(conn:fileno(), port, cport), tostring(conn))
    conn:close(); c:close(); srv:close()
  end)

  it("shows unix paths, '@' for the abstract namespace, nothing when unnamed", function()
    local a, b = socket.socketpair()
    assert.are.equal(("socket (fd %d, AF_UNIX, SOCK_STREAM)"):format(a:fileno()), tostring(a))
    a:close(); b:close()
    local name = "luasock-spec-" .. os.time()
    local s = support.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    assert(s:bind("\0" .. name))
    assert.are.equal(("socket (fd %d, AF_UNIX, SOCK_DGRAM, @%s)"):format(s:fileno(), name), tostring(s))
    s:close()
    local path = support.temp_path()
    local srv = support.socket(socket.AF_UNIX)
    assert(srv:bind(path))
    assert(srv:listen())
    local c = support.socket(socket.AF_UNIX)
    assert(c:connect(path))
    assert.are.equal(("socket (fd %d, AF_UNIX, SOCK_STREAM, (unnamed) -> %s)"):format(c:fileno(), path),
      tostring(c))
    c:close(); srv:close()
  end)

  it("shows numbers for a family or type it has no name for", function()
    local s = support.socket(socket.AF_INET, socket.SOCK_STREAM)
    assert.matches("^socket %(fd %d+, AF_INET, SOCK_STREAM, 0%.0%.0%.0:0%)$", tostring(s))
    s:close()
  end)
end)

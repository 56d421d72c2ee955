-- socket_spec: the socket object of socket.c — creation of every family
-- and type, close-on-exec, close/__gc/<close>, the closed-socket rule for
-- every method, read-only fields, __tostring, timeouts, socket options,
-- shutdown, socketpair, gettime/sleep, the constants and socket.errno.
local socket = require "socket"
local lfs = require "lfs"
local E = socket.errno

local O_CLOEXEC, O_NONBLOCK = 0x80000, 0x800   -- Linux values (octal 02000000, 04000)

-- The open-file flags of descriptor fd, from /proc/self/fdinfo.
local function fd_flags(fd)
  local f = assert(io.open("/proc/self/fdinfo/" .. fd))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("flags:%s*(%d+)"), 8)
end

local function fd_open(fd)
  return lfs.attributes("/proc/self/fd/" .. fd) ~= nil
end

local function new(family, type, proto)
  local s = assert(socket.socket(family, type, proto))
  s:settimeout(2)
  return s
end

-- A fresh unix socket path in /tmp (removed by the caller).
local function tmppath()
  local p = os.tmpname()
  os.remove(p)
  return p
end

-- Whether ::1 is usable here, and if not why.
local function v6_reason()
  if not socket.has_ipv6 then return "socket.has_ipv6 is false" end
  local s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
  local ok, msg = s:bind({"::1", 0})
  s:close()
  if not ok then return "cannot bind ::1: " .. tostring(msg) end
end

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
      local s = new(socket.AF_INET, ty)
      assert.are.equal(socket.AF_INET, s.family)
      assert.are.equal(ty, s.type)
      assert.are.equal(0, s.proto)
      local flags = fd_flags(s:fileno())
      assert.are_not.equal(0, flags & O_CLOEXEC)
      assert.are_not.equal(0, flags & O_NONBLOCK)
      s:close()
    end
  end)

  it("defaults to AF_INET, SOCK_STREAM, 0", function()
    local s = new()
    assert.are.same({socket.AF_INET, socket.SOCK_STREAM, 0}, {s.family, s.type, s.proto})
    assert.are.equal(socket.SOCK_STREAM, s:getsockopt(socket.SOL_SOCKET, socket.SO_TYPE))
    s:close()
  end)

  it("exchanges data over every family and type this machine has", function()
    -- TCP and UDP over 127.0.0.1 (and ::1 below), unix stream, dgram, seqpacket
    local function stream_roundtrip(family, addr, type)
      type = type or socket.SOCK_STREAM
      local srv = new(family, type)
      assert(srv:bind(addr))
      assert(srv:listen())
      local c = new(family, type)
      assert(c:connect(srv:getsockname()))
      local conn = assert(srv:accept())
      conn:settimeout(2)
      assert.are.equal(0, fd_flags(conn:fileno()) & O_CLOEXEC ~ O_CLOEXEC)
      assert(c:sendall("ping"))
      assert.are.equal("ping", conn:recv(10))
      conn:close(); c:close(); srv:close()
    end
    local function dgram_roundtrip(family, type, addr)
      local a = new(family, type)
      assert(a:bind(addr))
      local b = new(family, type)
      assert(b:connect(a:getsockname()))
      assert(b:send("datagram"))
      assert.are.equal("datagram", a:recv(100))
      a:close(); b:close()
    end
    stream_roundtrip(socket.AF_INET, {"127.0.0.1", 0})
    dgram_roundtrip(socket.AF_INET, socket.SOCK_DGRAM, {"127.0.0.1", 0})
    local p1, p2 = tmppath(), tmppath()
    local ok, err = pcall(function()
      stream_roundtrip(socket.AF_UNIX, p1)
      dgram_roundtrip(socket.AF_UNIX, socket.SOCK_DGRAM, "\0luasock-socket-spec-" .. os.time())
      stream_roundtrip(socket.AF_UNIX, p2, socket.SOCK_SEQPACKET)
    end)
    os.remove(p1); os.remove(p2)
    assert(ok, err)
  end)

  it("creates TCP and UDP over IPv6", function()
    local why = v6_reason()
    if why then return pending("IPv6 skipped: " .. why) end
    for _, ty in ipairs{socket.SOCK_STREAM, socket.SOCK_DGRAM} do
      local s = new(socket.AF_INET6, ty)
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
    assert.are_not.equal(0, fd_flags(s:fileno()) & O_CLOEXEC)
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
    assert.is_true(fd_open(fd))
    local w = assert(socket.socket(nil, nil, nil, fd))
    assert.are.same({socket.AF_UNIX, socket.SOCK_DGRAM, 0}, {w.family, w.type, w.proto})
    assert.are.equal(fd, w:fileno())
    w:settimeout(2)
    assert(b:send("x"))
    assert.are.equal("x", w:recv(1))
    w:close()
    assert.is_false(fd_open(fd))
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
    assert.are_not.equal(0, fd_flags(d:fileno()) & O_CLOEXEC)
    local f = assert(socket.fromfd(a:fileno()))
    assert.are.same({socket.AF_UNIX, socket.SOCK_STREAM}, {f.family, f.type})
    assert.are_not.equal(0, fd_flags(f:fileno()) & O_CLOEXEC)
    a:close()   -- the duplicates still reach b
    assert(d:send("d"))
    assert(f:send("f"))
    local got = assert(b:recv(2))
    if #got < 2 then got = got .. assert(b:recv(1)) end
    assert.are.equal("df", got)
    d:close(); f:close(); b:close()
  end)

  it("dup() raises on a closed socket, fromfd on a bad argument", function()
    local s = new()
    s:close()
    assert.has_error(function() s:dup() end, "attempt to use a closed socket")
    assert.has_error(function() socket.fromfd(-1) end,
      "bad argument #1 to 'fromfd' (negative file descriptor)")
    assert.has_error(function() socket.fromfd({}) end,
      "bad argument #1 to 'fromfd' (number expected, got table)")
  end)

  it("fromfd returns nil, message, errno for a descriptor that is not a socket", function()
    local s = new()
    local fd = s:fileno()
    s:close()
    assert.are.same({nil, "Bad file descriptor", E.EBADF}, {socket.fromfd(fd)})
  end)

  it("methods raise on something that is not a socket", function()
    local s = new()
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
    local u = new(socket.AF_INET, socket.SOCK_DGRAM)
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
    assert.are.equal(0, fd_flags(a:fileno()) & O_CLOEXEC)
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
    local s = new(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
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
    local s = new()
    local fd = s:fileno()
    assert.is_true(fd_open(fd))
    assert.is_true(s:close())
    assert.is_true(s:close())
    assert.are.equal(-1, s:fileno())
    assert.is_false(fd_open(fd))
    assert.are.equal("socket (closed)", tostring(s))
  end)

  it("every other method raises on a closed socket", function()
    local s = new()
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
      local s = new()
      fd = s:fileno()
    end
    assert.is_true(fd_open(fd))
    collectgarbage()
    collectgarbage()
    assert.is_false(fd_open(fd))
  end)

  it("<close> releases the descriptor at the end of the block", function()
    local fd, keep
    do
      local s <close> = new()
      fd, keep = s:fileno(), s
      assert.is_true(fd_open(fd))
    end
    assert.is_false(fd_open(fd))
    assert.are.equal(-1, keep:fileno())
    assert.are.equal("socket (closed)", tostring(keep))
  end)

  it("<close> in one task tells a task waiting on that socket: closed", function()
    -- in a child under timeout(1): a waiter that is never woken would hang run()
    if not (socket.spawn and socket.run) then
      return pending("tasks (socket.spawn/run) are not available in this build yet")
    end
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
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
    f:close()
    local luasock = os.getenv("LUASOCK") or "build/luasock"
    local p = io.popen(("timeout 5 %q %q 2>&1"):format(luasock, script))
    local out = p:read("a")
    local _, _, code = p:close()
    os.remove(script)
    assert.are.equal(0, code, out)
    assert.are.equal(("nil\tclosed\t%d\t-1\n"):format(E.EBADF), out)
  end)

  it("a closed socket never touches the descriptor number it had", function()
    -- the number is reused by the next socket; the closed object must
    -- raise rather than send on someone else's descriptor
    local a, b = socket.socketpair()
    local fd = a:fileno()
    a:close()
    local c = new()    -- likely reuses fd
    assert.has_error(function() a:send("x") end, "attempt to use a closed socket")
    assert.are_not.equal(fd, a:fileno())
    c:close(); b:close()
  end)
end)

describe("fields", function()
  it("family, type and proto are read-only", function()
    local s = new(socket.AF_INET, socket.SOCK_DGRAM)
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
      socks[i] = new(k[1], k[2], k[3])
      socks[#kinds + i] = new(k[1], k[2], k[3])   -- a second of each kind
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
    local srv = new(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    assert(srv:bind({"127.0.0.1", 0}))
    assert(srv:listen())
    local c = new()
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
    local srv = new()
    assert(srv:bind({"127.0.0.1", 0}))
    assert(srv:listen())
    local port = srv:getsockname().port
    assert.are.equal(("socket (fd %d, AF_INET, SOCK_STREAM, 127.0.0.1:%d)"):format(srv:fileno(), port),
      tostring(srv))
    local c = new()
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
    local s = new(socket.AF_UNIX, socket.SOCK_DGRAM)
    assert(s:bind("\0" .. name))
    assert.are.equal(("socket (fd %d, AF_UNIX, SOCK_DGRAM, @%s)"):format(s:fileno(), name), tostring(s))
    s:close()
    local path = tmppath()
    local srv = new(socket.AF_UNIX)
    assert(srv:bind(path))
    assert(srv:listen())
    local c = new(socket.AF_UNIX)
    assert(c:connect(path))
    assert.are.equal(("socket (fd %d, AF_UNIX, SOCK_STREAM, (unnamed) -> %s)"):format(c:fileno(), path),
      tostring(c))
    c:close(); srv:close()
    os.remove(path)
  end)

  it("shows numbers for a family or type it has no name for", function()
    local s = new(socket.AF_INET, socket.SOCK_STREAM)
    assert.matches("^socket %(fd %d+, AF_INET, SOCK_STREAM, 0%.0%.0%.0:0%)$", tostring(s))
    s:close()
  end)
end)

describe("timeouts", function()
  after_each(function() socket.setdefaulttimeout(nil) end)

  it("settimeout/gettimeout: nil blocking, 0 non-blocking, seconds", function()
    local s = new()
    assert.is_true(s:settimeout(nil))
    assert.is_nil(s:gettimeout())
    assert.is_true(s:settimeout(0))
    assert.are.equal(0, s:gettimeout())
    assert.is_true(s:settimeout(1.5))
    assert.are.equal(1.5, s:gettimeout())
    assert.is_true(s:settimeout())
    assert.is_nil(s:gettimeout())
    s:close()
  end)

  it("settimeout raises on a negative, NaN or non-number timeout", function()
    local s = new()
    assert.has_error(function() s:settimeout(-1) end,
      "bad argument #1 to 'settimeout' (timeout must be non-negative)")
    assert.has_error(function() s:settimeout(0 / 0) end,
      "bad argument #1 to 'settimeout' (timeout must be non-negative)")
    assert.has_error(function() s:settimeout("soon") end,
      "bad argument #1 to 'settimeout' (number expected, got string)")
    assert.are.equal(2, s:gettimeout())   -- unchanged
    s:close()
  end)

  it("setblocking(true) is settimeout(nil), setblocking(false) settimeout(0)", function()
    local s = new()
    assert.is_true(s:setblocking(false))
    assert.are.equal(0, s:gettimeout())
    assert.is_false(s:getblocking())
    assert.is_true(s:setblocking(true))
    assert.is_nil(s:gettimeout())
    assert.is_true(s:getblocking())
    s:settimeout(0.5)
    assert.is_true(s:getblocking())   -- Python: a timeout is blocking mode
    assert.has_error(function() s:setblocking(1) end,
      "bad argument #1 to 'setblocking' (boolean expected, got number)")
    s:close()
  end)

  it("timeout 0 fails at once with EAGAIN, a timeout with nil, 'timeout', ETIMEDOUT", function()
    local a, b = socket.socketpair()
    a:settimeout(0)
    local t0 = socket.gettime()
    local data, msg, code = a:recv(10)
    assert.is_nil(data)
    assert.are.equal(E.EAGAIN, code)
    assert.is_string(msg)
    a:settimeout(0.1)
    data, msg, code = a:recv(10)
    local elapsed = socket.gettime() - t0
    assert.are.same({nil, "timeout", E.ETIMEDOUT}, {data, msg, code})
    assert.is_true(elapsed >= 0.09 and elapsed < 1.5, "took " .. elapsed)
    a:close(); b:close()
  end)

  it("setdefaulttimeout raises on a negative timeout", function()
    assert.has_error(function() socket.setdefaulttimeout(-2) end,
      "bad argument #1 to 'setdefaulttimeout' (timeout must be non-negative)")
    assert.is_nil(socket.getdefaulttimeout())
  end)

  it("the default timeout applies to sockets made afterwards", function()
    socket.setdefaulttimeout(0.5)
    local s = assert(socket.socket())
    local a, b = socket.socketpair()
    assert.are.same({0.5, 0.5, 0.5}, {s:gettimeout(), a:gettimeout(), b:gettimeout()})
    s:close(); a:close(); b:close()
  end)
end)

describe("socket options", function()
  it("round-trips booleans, integers and packed strings", function()
    local s = new()
    local S = socket.SOL_SOCKET
    assert.is_true(s:setsockopt(S, socket.SO_REUSEADDR, true))
    assert.are.equal(1, s:getsockopt(S, socket.SO_REUSEADDR))
    assert.is_true(s:setsockopt(S, socket.SO_REUSEADDR, false))
    assert.are.equal(0, s:getsockopt(S, socket.SO_REUSEADDR))
    assert.is_true(s:setsockopt(S, socket.SO_KEEPALIVE, 1))
    assert.are.equal(1, s:getsockopt(S, socket.SO_KEEPALIVE))
    assert.is_true(s:setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, true))
    assert.are.equal(1, s:getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    assert.is_true(s:setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 77))
    assert.are.equal(77, s:getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))
    assert.is_true(s:setsockopt(S, socket.SO_RCVBUF, 8192))
    assert.is_true(s:getsockopt(S, socket.SO_RCVBUF) >= 8192)   -- Linux doubles it
    assert.is_true(s:setsockopt(S, socket.SO_LINGER, string.pack("ii", 1, 5)))
    local raw = s:getsockopt(S, socket.SO_LINGER, 8)
    assert.are.equal(8, #raw)
    local onoff, linger = string.unpack("ii", raw)
    assert.are.same({1, 5}, {onoff, linger})
    assert.is_true(s:setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 33))
    assert.are.equal(33, s:getsockopt(socket.IPPROTO_IP, socket.IP_TTL))
    assert.are.equal(0, s:getsockopt(S, socket.SO_ERROR))
    assert.are.equal(socket.AF_INET, s:getsockopt(S, socket.SO_DOMAIN))
    assert.are.equal(0, s:getsockopt(S, socket.SO_ACCEPTCONN))
    assert(s:bind({"127.0.0.1", 0}))
    assert(s:listen())
    assert.are.equal(1, s:getsockopt(S, socket.SO_ACCEPTCONN))
    s:close()
  end)

  it("sets IPV6_V6ONLY on an IPv6 socket", function()
    local why = v6_reason()
    if why then return pending("IPv6 skipped: " .. why) end
    local s = new(socket.AF_INET6)
    assert.is_true(s:setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, true))
    assert.are.equal(1, s:getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
    s:close()
  end)

  it("raises on wrong argument types", function()
    local s = new()
    assert.has_error(function() s:setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, {}) end,
      "bad argument #3 to 'setsockopt' (integer, boolean or string expected, got table)")
    assert.has_error(function() s:setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) end,
      "bad argument #3 to 'setsockopt' (integer, boolean or string expected, got no value)")
    assert.has_error(function() s:setsockopt("SOL_SOCKET", 2, 1) end,
      "bad argument #1 to 'setsockopt' (number expected, got string)")
    assert.has_error(function() s:setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2^40) end,
      "bad argument #3 to 'setsockopt' (integer out of range)")
    assert.has_error(function() s:getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 0) end,
      "bad argument #3 to 'getsockopt' (buflen out of range (1..1024))")
    assert.has_error(function() s:getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 4096) end,
      "bad argument #3 to 'getsockopt' (buflen out of range (1..1024))")
    s:close()
  end)

  it("returns nil, message, ENOPROTOOPT for an unknown option", function()
    local s = new()
    local ok, msg, code = s:setsockopt(socket.SOL_SOCKET, 12345, 1)
    assert.is_nil(ok)
    assert.are.equal(E.ENOPROTOOPT, code)
    assert.are.equal("Protocol not available", msg)
    assert.are.same({nil, "Protocol not available", E.ENOPROTOOPT},
      {s:getsockopt(socket.SOL_SOCKET, 12345)})
    assert.are.same({nil, "Protocol not available", E.ENOPROTOOPT},
      {s:getsockopt(socket.SOL_SOCKET, 12345, 16)})
    s:close()
  end)
end)

describe("shutdown", function()
  it("shuts one direction: the peer reads end of stream", function()
    local a, b = socket.socketpair()
    a:settimeout(2); b:settimeout(2)
    assert.is_true(a:shutdown(socket.SHUT_WR))
    assert.are.equal("", b:recv(10))
    assert(b:send("still open"))
    assert.are.equal("still open", a:recv(100))
    assert.is_true(a:shutdown(socket.SHUT_RDWR))
    a:close(); b:close()
  end)

  it("raises on an unknown mode", function()
    local a, b = socket.socketpair()
    assert.has_error(function() a:shutdown(7) end,
      "bad argument #1 to 'shutdown' (invalid shutdown mode (SHUT_RD, SHUT_WR or SHUT_RDWR))")
    assert.has_error(function() a:shutdown() end,
      "bad argument #1 to 'shutdown' (number expected, got no value)")
    a:close(); b:close()
  end)

  it("returns nil, message, ENOTCONN on an unconnected socket", function()
    local s = new()
    assert.are.same({nil, "Transport endpoint is not connected", E.ENOTCONN},
      {s:shutdown(socket.SHUT_RDWR)})
    s:close()
  end)
end)

describe("socket.socketpair", function()
  it("makes two connected AF_UNIX stream sockets by default", function()
    local a, b = socket.socketpair()
    assert.are.same({socket.AF_UNIX, socket.SOCK_STREAM}, {a.family, a.type})
    assert.are.same({socket.AF_UNIX, socket.SOCK_STREAM}, {b.family, b.type})
    a:settimeout(2); b:settimeout(2)
    assert.are.equal(0, fd_flags(a:fileno()) & O_CLOEXEC ~ O_CLOEXEC)
    assert.are.equal(0, fd_flags(b:fileno()) & O_CLOEXEC ~ O_CLOEXEC)
    assert(a:sendall("to b"))
    assert.are.equal("to b", b:recv(10))
    assert(b:sendall("to a"))
    assert.are.equal("to a", a:recv(10))
    a:close(); b:close()
  end)

  it("keeps message boundaries with SOCK_SEQPACKET and SOCK_DGRAM", function()
    for _, ty in ipairs{socket.SOCK_SEQPACKET, socket.SOCK_DGRAM} do
      local a, b = socket.socketpair(socket.AF_UNIX, ty)
      b:settimeout(2)
      assert.are.equal(ty, a.type)
      assert(a:send("one"))
      assert(a:send("two"))
      assert.are.equal("one", b:recv(100))
      assert.are.equal("two", b:recv(100))
      a:close(); b:close()
    end
  end)

  it("raises on a wrong argument type", function()
    assert.has_error(function() socket.socketpair("unix") end,
      "bad argument #1 to 'socketpair' (number expected, got string)")
  end)

  it("returns nil, message, errno for a family without pairs", function()
    local a, msg, code = socket.socketpair(socket.AF_INET)
    assert.is_nil(a)
    assert.are.equal(E.EOPNOTSUPP, code)
    assert.are.equal("Operation not supported", msg)
  end)
end)

describe("socket.gettime and socket.sleep", function()
  it("gettime is monotonic seconds", function()
    local t1 = socket.gettime()
    local t2 = socket.gettime()
    assert.is_number(t1)
    assert.is_true(t2 >= t1)
  end)

  it("sleep waits about the time asked and returns true", function()
    local t0 = socket.gettime()
    assert.is_true(socket.sleep(0.1))
    local dt = socket.gettime() - t0
    assert.is_true(dt >= 0.099 and dt < 1.5, "slept " .. dt)
    assert.is_true(socket.sleep(0))
  end)

  it("in tasks, sleeps overlap: two 0.2 s sleeps take about 0.2 s", function()
    if not (socket.spawn and socket.run) then
      return pending("tasks (socket.spawn/run) are not available in this build yet")
    end
    local order = {}
    local t0 = socket.gettime()
    socket.spawn(function() assert(socket.sleep(0.2)); order[#order + 1] = "long" end)
    socket.spawn(function() assert(socket.sleep(0.1)); order[#order + 1] = "short" end)
    local ok, err = socket.run()
    local dt = socket.gettime() - t0
    assert(ok, err)
    assert.are.same({"short", "long"}, order)
    assert.is_true(dt >= 0.19 and dt < 0.35, "took " .. dt)
  end)

  it("sleep raises on a negative or missing length", function()
    assert.has_error(function() socket.sleep(-0.5) end,
      "bad argument #1 to 'sleep' (sleep length must be non-negative)")
    assert.has_error(function() socket.sleep() end,
      "bad argument #1 to 'sleep' (number expected, got no value)")
  end)
end)

describe("constants", function()
  it("has every constant of DESIGN.md with the Linux values", function()
    local expect = {
      AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10, AF_UNSPEC = 0,
      SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_RAW = 3, SOCK_SEQPACKET = 5,
      IPPROTO_IP = 0, IPPROTO_TCP = 6, IPPROTO_UDP = 17, IPPROTO_ICMP = 1,
      IPPROTO_ICMPV6 = 58, IPPROTO_IPV6 = 41, IPPROTO_RAW = 255,
      SOL_SOCKET = 1, SO_REUSEADDR = 2, SO_REUSEPORT = 15, SO_KEEPALIVE = 9,
      SO_BROADCAST = 6, SO_RCVBUF = 8, SO_SNDBUF = 7, SO_LINGER = 13, SO_ERROR = 4,
      SO_TYPE = 3, SO_RCVTIMEO = 20, SO_SNDTIMEO = 21, SO_RCVLOWAT = 18,
      SO_SNDLOWAT = 19, SO_ACCEPTCONN = 30, SO_DOMAIN = 39, SO_PROTOCOL = 38,
      SO_OOBINLINE = 10, TCP_NODELAY = 1, TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5,
      TCP_KEEPCNT = 6, IPV6_V6ONLY = 26, IP_TTL = 2, IP_MULTICAST_TTL = 33,
      IP_MULTICAST_LOOP = 34, IP_MULTICAST_IF = 32, IP_ADD_MEMBERSHIP = 35,
      MSG_OOB = 1, MSG_PEEK = 2, MSG_DONTWAIT = 64, MSG_WAITALL = 256,
      MSG_TRUNC = 32, MSG_CTRUNC = 8, MSG_NOSIGNAL = 16384,
      MSG_CMSG_CLOEXEC = 0x40000000, SHUT_RD = 0, SHUT_WR = 1, SHUT_RDWR = 2,
      AI_PASSIVE = 1, AI_CANONNAME = 2, AI_NUMERICHOST = 4, AI_NUMERICSERV = 1024,
      AI_V4MAPPED = 8, AI_ALL = 16, AI_ADDRCONFIG = 32,
      NI_NUMERICHOST = 1, NI_NUMERICSERV = 2, NI_NOFQDN = 4, NI_NAMEREQD = 8,
      NI_DGRAM = 16, SCM_RIGHTS = 1, EAI_NONAME = -2, INADDR_LOOPBACK = 0x7f000001,
      INADDR_BROADCAST = 0xffffffff,
    }
    for name, value in pairs(expect) do
      assert.are.equal(value, socket[name], name)
      assert.is_true(math.type(socket[name]) == "integer", name)
    end
    assert.is_boolean(socket.has_ipv6)
  end)

  it("has_ipv6 tells whether an AF_INET6 socket can be made", function()
    local s, _, code = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    assert.are.equal(s ~= nil, socket.has_ipv6)
    if s then s:close() else assert.are.equal(E.EAFNOSUPPORT, code) end
  end)
end)

describe("socket.errno", function()
  it("names errnos with the Linux values", function()
    assert.are.equal(111, E.ECONNREFUSED)
    assert.are.equal(110, E.ETIMEDOUT)
    assert.are.equal(32, E.EPIPE)
    assert.are.equal(9, E.EBADF)
    assert.are.equal(11, E.EAGAIN)
    assert.are.equal(E.EAGAIN, E.EWOULDBLOCK)
    assert.are.equal(98, E.EADDRINUSE)
    assert.are.equal(104, E.ECONNRESET)
    assert.are.equal(115, E.EINPROGRESS)
    assert.are.equal(92, E.ENOPROTOOPT)
  end)

  it("also names the resolver codes returned in the errno position", function()
    assert.are.equal(socket.EAI_NONAME, E.EAI_NONAME)
    assert.are.equal(-2, E.EAI_NONAME)
    assert.are.equal(-3, E.EAI_AGAIN)
    assert.are.equal(socket.EAI_SERVICE, E.EAI_SERVICE)
  end)

  it("is complete: every errno from 1 to 133 has a name", function()
    local named = {}
    for name, v in pairs(E) do
      assert.matches("^E[%u%d_]+$", name)
      assert.is_true(math.type(v) == "integer")
      named[v] = name
    end
    for v = 1, 133 do
      if v ~= 41 and v ~= 58 then   -- Linux has no errno 41 nor 58
        assert.is_not_nil(named[v], "errno " .. v .. " has no name")
      end
    end
  end)
end)

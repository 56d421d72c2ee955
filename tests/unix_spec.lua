-- unix_spec: AF_UNIX stream, datagram and seqpacket over a temporary
-- path, the abstract namespace ("@name"), unnamed peers and paths too long.
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

-- A new AF_UNIX socket of type, timeout 2 s.
local function sock(type) return support.socket(socket.AF_UNIX, type) end

describe("unix", function()
  it("stream echo over a path", function()
    local path = support.temp_path("stream.sock")
    local srv = sock(socket.SOCK_STREAM)
    assert.is_true(srv:bind(path))
    assert.is_true(srv:listen())
    assert.equal(path, srv:getsockname())
    local c = sock(socket.SOCK_STREAM)
    assert.is_true(c:connect(path))
    local conn, addr = assert(srv:accept())
    conn:settimeout(2)
    assert.equal("", addr)                    -- the client never bound: unnamed
    assert.equal("", c:getsockname())
    assert.equal(path, c:getpeername())
    assert.is_true(c:sendall("over unix"))
    assert.equal("over unix", conn:recv(100))
    c:close()
    assert.equal("", conn:recv(100))
    conn:close(); srv:close()
  end)

  it("create_server takes family AF_UNIX", function()
    local path = support.temp_path("server.sock")
    local srv = assert(socket.create_server(path, {family = socket.AF_UNIX, backlog = 2}))
    srv:settimeout(2)
    local c = sock(socket.SOCK_STREAM)
    assert.is_true(c:connect(path))
    local conn = assert(srv:accept())
    conn:close(); c:close(); srv:close()
  end)

  it("datagrams over paths, with the sender's path in recvfrom", function()
    local pa, pb = support.temp_path("a.sock"), support.temp_path("b.sock")
    local a, b = sock(socket.SOCK_DGRAM), sock(socket.SOCK_DGRAM)
    assert.is_true(a:bind(pa))
    assert.is_true(b:bind(pb))
    assert.equal(5, a:sendto("hello", pb))
    local data, from = b:recvfrom(100)
    assert.equal("hello", data)
    assert.equal(pa, from)
    -- An unbound sender is unnamed: recvfrom gives "".
    local c = sock(socket.SOCK_DGRAM)
    assert.equal(4, c:sendto("anon", 0, pb))
    data, from = b:recvfrom(100)
    assert.equal("anon", data)
    assert.equal("", from)
    a:close(); b:close(); c:close()
  end)

  it("seqpacket keeps message boundaries", function()
    local path = support.temp_path("seq.sock")
    local srv = sock(socket.SOCK_SEQPACKET)
    assert.is_true(srv:bind(path))
    assert.is_true(srv:listen())
    local c = sock(socket.SOCK_SEQPACKET)
    assert.is_true(c:connect(path))
    local conn = assert(srv:accept())
    conn:settimeout(2)
    assert.equal(5, c:send("first"))
    assert.equal(6, c:send("second"))
    assert.equal("first", conn:recv(100))
    assert.equal("second", conn:recv(100))
    c:close(); conn:close(); srv:close()
  end)

  it("abstract namespace names keep their NULs and leave no file", function()
    local name = support.abstract_name("stream") .. "\0tail"
    local shown = "@" .. name:sub(2)
    local srv = sock(socket.SOCK_STREAM)
    assert.is_true(srv:bind(name))
    assert.is_true(srv:listen())
    assert.equal(shown, srv:getsockname())
    local c = sock(socket.SOCK_STREAM)
    assert.is_true(c:connect(name))
    assert.equal(shown, c:getpeername())
    local conn = assert(srv:accept())
    -- The name without its tail is a different address.
    local other = sock(socket.SOCK_STREAM)
    local ok, _, code = other:connect(name:match("^(%z[^%z]*)"))
    assert.is_nil(ok)
    assert.equal(E.ECONNREFUSED, code)
    other:close(); conn:close(); c:close(); srv:close()
  end)

  it("an abstract name may fill sun_path exactly", function()
    local name = "\0" .. ("x"):rep(107)
    local s = sock(socket.SOCK_DGRAM)
    assert.is_true(s:bind(name))
    assert.equal("@" .. ("x"):rep(107), s:getsockname())
    s:close()
  end)

  -- An abstract name came back from getsockname, recvfrom and accept as
  -- "\0name": printed, its NUL byte went raw to the terminal, while
  -- tostring(sock) showed "@name".  Names now come back as "@name" (the
  -- form of ss(8), Go and systemd), which binds, connects and sends to the
  -- same abstract name as "\0name".
  it("abstract names come back as \"@name\" and \"@name\" reaches them", function()
    local name = support.abstract_name("at"):sub(2)
    local srv = sock(socket.SOCK_DGRAM)
    assert.is_true(srv:bind("@" .. name))
    assert.equal("@" .. name, srv:getsockname())
    assert.equal(("socket (fd %d, AF_UNIX, SOCK_DGRAM, @%s)"):format(srv:fileno(), name),
                 tostring(srv))
    local c = sock(socket.SOCK_DGRAM)
    assert.is_true(c:bind("\0" .. name .. "-client"))
    assert.equal(2, c:sendto("hi", "\0" .. name))     -- the Python spelling, same name
    local data, from = srv:recvfrom(10)
    assert.equal("hi", data)
    assert.equal("@" .. name .. "-client", from)
    assert.equal(3, srv:sendto("ack", from))
    assert.equal("ack", c:recv(10))
    assert.is_nil(io.open("@" .. name))              -- no file was made
    c:close(); srv:close()
  end)

  it("binding \"\" picks a free abstract name (autobind)", function()
    local s = sock(socket.SOCK_DGRAM)
    assert.is_true(s:bind(""))
    local name = s:getsockname()
    assert.matches("^@%x%x%x%x%x$", name)
    local c = sock(socket.SOCK_DGRAM)
    assert.equal(2, c:sendto("hi", name))
    assert.equal("hi", s:recv(10))
    s:close(); c:close()
  end)

  it("socketpair peers are unnamed", function()
    local a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    assert.equal("", a:getpeername())
    assert.equal("", b:getsockname())
    a:close(); b:close()
  end)

  it("returns nil, msg, errno for a missing path", function()
    local path = support.temp_path("missing.sock")
    local c = sock(socket.SOCK_STREAM)
    local ok, msg, code = c:connect(path)
    assert.is_nil(ok)
    assert.equal("No such file or directory", msg)
    assert.equal(E.ENOENT, code)
    c:close()
  end)

  it("returns EADDRINUSE when the path exists", function()
    local path = support.temp_path("used.sock")
    local a, b = sock(socket.SOCK_DGRAM), sock(socket.SOCK_DGRAM)
    assert.is_true(a:bind(path))
    local ok, _, code = b:bind(path)
    assert.is_nil(ok)
    assert.equal(E.EADDRINUSE, code)
    a:close(); b:close()
  end)

  it("raises on a path too long or with a zero byte, or a wrong type", function()
    local s = sock(socket.SOCK_STREAM)
    assert.has_error(function() s:bind(("p"):rep(108)) end,
      "bad argument #1 to 'bind' (unix path too long (108 bytes, at most 107))")
    assert.has_error(function() s:connect("\0" .. ("p"):rep(108)) end,
      "bad argument #1 to 'connect' (unix path too long (109 bytes, at most 108))")
    assert.has_error(function() s:bind("a\0b") end,
      "bad argument #1 to 'bind' (unix path contains a zero byte)")
    assert.has_error(function() s:bind({"127.0.0.1", 0}) end,
      "bad argument #1 to 'bind' (string expected, got table)")
    s:close()
  end)

  -- Story: recv(1e9) allocated a gigabyte per call.  The
  -- buffer is now sized by the next datagram (MSG_PEEK | MSG_TRUNC, which
  -- AF_UNIX honours too), so a datagram larger than the stack buffer
  -- still arrives whole, and recv(2^40) no longer runs out of memory.
  it("recv with a huge bufsize returns a large datagram whole", function()
    local a, b = support.pair("socketpair_dgram")
    local big = string.rep("u", 150000)
    assert.equal(#big, a:send(big))
    assert.equal(big, b:recv(2^40))
    assert.equal(0, a:send(""))
    assert.equal("", b:recv(1e9))             -- an empty datagram is one too
    a:close(); b:close()
  end)
end)

-- module_spec: the functions of the socket module besides socket():
-- socketpair, gettime and sleep, the constants and socket.errno.
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

describe("socket.socketpair", function()
  it("makes two connected AF_UNIX stream sockets by default", function()
    local a, b = socket.socketpair()
    assert.are.same({socket.AF_UNIX, socket.SOCK_STREAM}, {a.family, a.type})
    assert.are.same({socket.AF_UNIX, socket.SOCK_STREAM}, {b.family, b.type})
    a:settimeout(2); b:settimeout(2)
    assert.is_true(support.is_cloexec(a:fileno()))
    assert.is_true(support.is_cloexec(b:fileno()))
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

  -- Overlap is shown by the order of events, not by the clock: on a
  -- loaded machine a process may wait its turn to run longer than a sleep.
  it("in tasks, sleeps overlap: the shorter ends while the longer still sleeps", function()
    if not (socket.spawn and socket.run) then
      return pending("tasks (socket.spawn/run) are not available in this build yet")
    end
    local events = {}
    local function sleeper(name, seconds)
      return function()
        events[#events + 1] = name .. " sleeps"
        assert(socket.sleep(seconds))
        events[#events + 1] = name .. " wakes"
      end
    end
    local t0 = socket.gettime()
    socket.spawn(sleeper("long", 0.2))
    socket.spawn(sleeper("short", 0.1))
    local ok, err = socket.run()
    local dt = socket.gettime() - t0
    assert(ok, err)
    -- Serial sleeps would give long sleeps, long wakes, short sleeps, ...
    assert.are.same({"long sleeps", "short sleeps", "short wakes", "long wakes"}, events)
    assert.is_true(dt >= 0.19 and dt < 1.5, "took " .. dt)
  end)

  it("sleep raises on a negative or missing length", function()
    assert.has_error(function() socket.sleep(-0.5) end,
      "bad argument #1 to 'sleep' (sleep length must be non-negative)")
    assert.has_error(function() socket.sleep() end,
      "bad argument #1 to 'sleep' (number expected, got no value)")
  end)
end)

describe("constants", function()
  it("has every documented constant with the Linux values", function()
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

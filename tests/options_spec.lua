-- options_spec: the settings of a socket — timeouts (settimeout,
-- setblocking, the default timeout), socket options (setsockopt and
-- getsockopt) and shutdown.  How timeouts end the calls that wait is
-- timeout_spec's.
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

describe("timeouts", function()
  after_each(function() socket.setdefaulttimeout(nil) end)

  it("settimeout/gettimeout: nil blocking, 0 non-blocking, seconds", function()
    local s = support.socket()
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
    local s = support.socket()
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
    local s = support.socket()
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
    local s = support.socket()
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
    local ok, why = support.has_ipv6()
    if not ok then return pending("IPv6 skipped: " .. why) end
    local s = support.socket(socket.AF_INET6)
    assert.is_true(s:setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, true))
    assert.are.equal(1, s:getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
    s:close()
  end)

  it("raises on wrong argument types", function()
    local s = support.socket()
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
    local s = support.socket()
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
    local s = support.socket()
    assert.are.same({nil, "Transport endpoint is not connected", E.ENOTCONN},
      {s:shutdown(socket.SHUT_RDWR)})
    s:close()
  end)
end)

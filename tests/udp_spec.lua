-- udp_spec: datagrams over 127.0.0.1 and ::1: sendto/recvfrom, connected
-- UDP (send/recv), SO_BROADCAST and the "<broadcast>" address, and both
-- error channels.
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

describe("udp", function()
  it("sendto and recvfrom over 127.0.0.1", function()
    local a, aaddr = support.bound("udp")
    local b, baddr = support.bound("udp")
    assert.equal(5, a:sendto("hello", baddr))
    local data, from = b:recvfrom(100)
    assert.equal("hello", data)
    assert.equal(aaddr, from)                     -- address tables compare by value
    assert.equal("127.0.0.1:" .. aaddr.port, tostring(from))
    assert.equal(3, b:sendto("ack", 0, from))       -- the flags form
    data, from = a:recvfrom(100)
    assert.equal("ack", data)
    assert.equal(baddr.port, from.port)
    a:close(); b:close()
  end)

  it("sendto and recvfrom over ::1", function()
    local ok, why = support.has_ipv6()
    if not ok then print("skipped: " .. why); return end
    local a, aaddr = support.bound("udp6")
    local b, baddr = support.bound("udp6")
    assert.equal(2, a:sendto("v6", {"::1", baddr.port}))
    local data, from = b:recvfrom(100)
    assert.equal("v6", data)
    assert.equal("::1", from.host)
    assert.equal(aaddr.port, from.port)
    assert.equal("[::1]:" .. aaddr.port, tostring(from))
    a:close(); b:close()
  end)

  it("connected UDP uses send and recv, and hears ECONNREFUSED", function()
    local a = support.bound("udp")
    local b, baddr = support.bound("udp")
    assert.is_true(a:connect(baddr))
    assert.equal(baddr, a:getpeername())
    assert.equal(4, a:send("ping"))
    assert.equal("ping", b:recv(100))
    b:close()
    -- Nobody listens on baddr now: the ICMP port unreachable comes back
    -- as ECONNREFUSED on a later call of the connected socket.
    assert.equal(4, a:send("ping"))
    local ok, _, code = a:recv(100)
    assert.is_nil(ok)
    assert.equal(E.ECONNREFUSED, code)
    a:close()
  end)

  it("keeps datagram boundaries and truncates to bufsize", function()
    local a = support.bound("udp")
    local b, baddr = support.bound("udp")
    a:sendto("first datagram", baddr)
    a:sendto("second", baddr)
    assert.equal("first", b:recv(5))
    assert.equal("second", b:recv(100))
    a:sendto("0123456789", baddr)
    assert.equal("0123", b:recv(4, socket.MSG_TRUNC))    -- never past bufsize
    a:close(); b:close()
  end)

  it("sends an empty datagram", function()
    local a = support.bound("udp")
    local b, baddr = support.bound("udp")
    assert.equal(0, a:sendto("", baddr))
    local data, from = b:recvfrom(10)
    assert.equal("", data)
    assert.is_table(from)
    a:close(); b:close()
  end)

  it("accepts '<broadcast>' with SO_BROADCAST and refuses it without", function()
    local s = support.socket(socket.AF_INET, socket.SOCK_DGRAM)
    -- Without SO_BROADCAST the kernel refuses: an OS failure, not a raise.
    -- (A UDP connect sends nothing; no datagram is ever sent here.)
    local ok, _, code = s:connect({"<broadcast>", 9})
    assert.is_nil(ok)
    assert.equal(E.EACCES, code)
    assert.is_true(s:setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1))
    -- Connecting sends nothing; it shows how "<broadcast>" was parsed.
    assert.is_true(s:connect({"<broadcast>", 9}))
    assert.equal("255.255.255.255", s:getpeername().host)
    s:close()
  end)

  it("binds the any address with \"\"", function()
    local s = assert(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    assert.is_true(s:bind({"", 0}))
    assert.equal("0.0.0.0", s:getsockname().host)
    s:close()
  end)

  it("times out in recvfrom", function()
    local s = support.bound("udp")
    s:settimeout(0.1)
    local ok, msg, code = s:recvfrom(10)
    assert.is_nil(ok)
    assert.equal("timeout", msg)
    assert.equal(E.ETIMEDOUT, code)
    s:close()
  end)

  it("raises on misuse", function()
    local s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert.has_error(function() s:sendto("x") end,
      "bad argument #2 to 'sendto' (value expected)")
    assert.has_error(function() s:sendto("x", {"127.0.0.1", 99999}) end,
      "bad argument #2 to 'sendto' (port 99999 out of range 0..65535)")
    assert.has_error(function() s:sendto("x", "flags", {"127.0.0.1", 9}) end)
    assert.has_error(function() s:recvfrom() end)
    s:close()
    assert.has_error(function() s:sendto("x", {"127.0.0.1", 9}) end,
      "attempt to use a closed socket")
  end)
end)

-- The bugs below, for datagrams.  recvfrom(2^40) allocated its
-- bufsize up front ("not enough memory"; an abort under ASan); the size
-- of the next datagram (MSG_PEEK | MSG_TRUNC) now bounds the buffer.
-- sendto(data, "127.0.0.1") pushed the address userdata before reading
-- the port, then complained that the port was a string or a userdata.
describe("udp sizes and addresses", function()
  it("recvfrom with a huge bufsize returns the whole datagram", function()
    local a, aaddr = support.bound("udp")
    local b, baddr = support.bound("udp")
    local big = string.rep("d", 65000)
    assert.equal(#big, a:sendto(big, baddr))
    local data, from = b:recvfrom(2^40)
    assert.equal(big, data)
    assert.equal(aaddr, from)
    assert.equal(2, a:sendto("hi", baddr))
    assert.equal("hi", b:recv(1e9))
    -- nothing queued: the wait and its timeout are as for a small size
    b:settimeout(0.05)
    assert.same({nil, "timeout", E.ETIMEDOUT}, {b:recvfrom(2^40)})
    b:settimeout(2)
    assert.same({nil, "Resource temporarily unavailable", E.EAGAIN},
                {b:recvfrom(2^40, socket.MSG_DONTWAIT)})
    a:close(); b:close()
  end)

  -- recv(0) waited for a datagram; Python's returns b'' at once and
  -- leaves the datagram queued, while recvfrom(0) waits for one and
  -- discards it (its sender is the answer).  luasock does the same.
  it("recv(0) returns \"\" at once; recvfrom(0) takes a datagram", function()
    local a, aaddr = support.bound("udp")
    local b, baddr = support.bound("udp")
    b:settimeout(1)                              -- a wait would time out
    assert.equal("", b:recv(0))
    b:settimeout(0.05)
    assert.same({nil, "timeout", E.ETIMEDOUT}, {b:recvfrom(0)})
    b:settimeout(2)
    assert.equal(5, a:sendto("first", baddr))
    assert.equal(6, a:sendto("second", baddr))
    assert.equal("", b:recv(0))
    local data, from = b:recvfrom(0)
    assert.equal("", data)
    assert.equal(aaddr, from)
    assert.equal("second", b:recv(100))         -- "first" went with recvfrom(0)
    a:close(); b:close()
  end)

  it("sendto with a host and no port raises about the port", function()
    local s = assert(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    assert.has_error(function() s:sendto("x", "127.0.0.1") end,
      "bad argument #2 to 'sendto' (port must be an integer, got nil)")
    assert.has_error(function() s:sendto("x", 0, "127.0.0.1") end,
      "bad argument #3 to 'sendto' (port must be an integer, got nil)")
    s:close()
  end)
end)

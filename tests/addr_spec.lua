-- addr_spec: address tables and their printing, getaddrinfo, getnameinfo,
-- inet_pton/inet_ntop, gethostname, gethostbyname.  Names looked up here
-- are only "localhost" (AF_INET, found in /etc/hosts) and literals; a name
-- that must fail is looked up by a child inside a network namespace of its
-- own (unshare -rn, or -n), so no query leaves the machine.
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

-- Run argv in a network namespace of its own: unshare -rn, else -n (root
-- in a chroot may not make a user namespace).  Returns support.run's
-- result, or nil and why when no namespace can be made here.
local function in_netns(argv)
  local why
  for _, flags in ipairs({"-rn", "-n"}) do
    local r = support.run({ "unshare", flags, table.unpack(argv) }, { stderr = "out" })
    if r.code == 0 or not r.out:match("^unshare: ") then return r end
    why = r.out
  end
  return nil, why
end

-- Run a Lua chunk in a child luasock with no network: its stdout, or nil
-- and the reason when namespaces are unavailable.
local function run_isolated(code)
  local r, why = in_netns({ support.LUASOCK, "-e", code })
  if not r then return nil, why end
  if r.code ~= 0 then error("child failed: " .. r.out) end
  return r.out
end

describe("address tables", function()
  it("answer .host, .port and print as host:port", function()
    local s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert(s:bind({"127.0.0.1", 0}))
    local a = s:getsockname()
    assert.equal("127.0.0.1", a[1])
    assert.equal(a[1], a.host)
    assert.equal(a[2], a.port)
    assert.is_true(a.port > 0)
    assert.equal(2, #a)
    assert.equal("127.0.0.1:" .. a.port, tostring(a))
    assert.is_nil(a.nosuchfield)
    assert.equal(a, s:getsockname())            -- __eq compares by value
    assert.are_not.equal(a, {"127.0.0.1", a.port + 1})
    s:close()
  end)

  it("IPv6 addresses print in brackets, with %scope when there is one", function()
    local infos = assert(socket.getaddrinfo("::1", 8001, socket.AF_INET6, socket.SOCK_STREAM))
    local a = infos[1].address
    assert.equal("[::1]:8001", tostring(a))
    assert.equal(0, a.flowinfo)
    assert.equal(0, a.scope_id)
    infos = assert(socket.getaddrinfo("fe80::1%1", 80, socket.AF_INET6, socket.SOCK_STREAM))
    a = infos[1].address
    assert.equal("fe80::1", a.host)
    assert.equal(1, a.scope_id)
    assert.equal("[fe80::1%lo]:80", tostring(a))   -- interface 1 is lo
    assert.equal("[fe80::1%12345]:80", tostring(setmetatable({"fe80::1", 80, 0, 12345},
                                                             getmetatable(a))))
  end)

  it("feed back into bind and connect, with flowinfo and scope_id", function()
    local v6, why = support.has_ipv6()
    if not v6 then print("skipped: " .. why); return end
    local s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    assert(s:bind({"::1", 0, 0, 0}))
    local a = s:getsockname()
    local c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    assert.is_true(c:connect(a))
    assert.equal(a, c:getpeername())
    assert.has_error(function() c:connect({"::1", a.port, 1 << 20}) end,
      "bad argument #1 to 'connect' (flowinfo must be an integer in 0..1048575)")
    assert.has_error(function() c:connect({"::1", a.port, 0, -1}) end,
      "bad argument #1 to 'connect' (scope_id must be an integer in 0..4294967295)")
    c:close(); s:close()
  end)
end)

describe("IPv6 scope", function()
  it("link-local addresses carry their scope through bind, sendto, recvfrom", function()
    -- In a namespace of our own, lo gets the link-local fe80::1.
    local code = [[
      local socket = require "socket"
      local s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s:settimeout(2)
      assert(s:bind({"fe80::1%lo", 0}))
      local a = s:getsockname()
      local c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); c:settimeout(2)
      assert(c:sendto("hi", {"fe80::1", a.port, 0, a.scope_id}))
      local data, from = assert(s:recvfrom(10))
      assert(c:connect(a))
      print(a.scope_id, tostring(a), data, from.scope_id, tostring(c:getpeername()) == tostring(a))]]
    -- The kernel puts fe80::1's local route in after `ip addr add` has
    -- returned (from its address work queue, which waits for the
    -- routing lock that other namespaces' setup and teardown hold): bind
    -- works at once, but a datagram sent before that route exists is
    -- forwarded nowhere and lost.  So the child starts once the route is
    -- there, waited for with a bounded poll (no event says it came).
    local r, why = in_netns({ "sh", "-c",
      'ip link set lo up && ip addr add fe80::1/64 dev lo nodad && i=0 && ' ..
      'until ip -6 route show table local | grep -q "^local fe80::1 "; do ' ..
      '[ $i -lt 500 ] || { echo "no local route for fe80::1"; exit 3; }; ' ..
      'i=$((i + 1)); sleep 0.01; done && exec "$0" -e "$1"',
      support.LUASOCK, code })
    if not r then print("skipped: no network namespace: " .. why); return end
    local ok, out = r.how == "exit" and r.code == 0, r.out
    assert.is_true(ok, out)
    local scope, text, data, from_scope, same = out:match("^(%d+)\t(%S+)\t(%S+)\t(%d+)\t(%S+)")
    assert.equal("1", scope, out)
    assert.matches("^%[fe80::1%%lo%]:%d+$", text)
    assert.equal("hi", data)
    assert.equal("1", from_scope)
    assert.equal("true", same)
  end)
end)

describe("getaddrinfo", function()
  it("resolves localhost and literals", function()
    support.needs("localhost")
    local infos = assert(socket.getaddrinfo("localhost", 80, socket.AF_INET, socket.SOCK_STREAM))
    assert.is_true(#infos >= 1)
    local ai = infos[1]
    assert.equal(socket.AF_INET, ai.family)
    assert.equal(socket.SOCK_STREAM, ai.type)
    assert.equal(socket.IPPROTO_TCP, ai.proto)
    assert.is_nil(ai.canonname)
    assert.equal("127.0.0.1:80", tostring(ai.address))
    infos = assert(socket.getaddrinfo("::1", "443", socket.AF_INET6, socket.SOCK_DGRAM))
    assert.equal("[::1]:443", tostring(infos[1].address))
    assert.equal(socket.IPPROTO_UDP, infos[1].proto)
  end)

  it("gives one entry per type when no type is asked", function()
    local infos = assert(socket.getaddrinfo("127.0.0.1", 53, socket.AF_INET))
    local types = {}
    for _, ai in ipairs(infos) do types[ai.type] = true end
    assert.is_true(types[socket.SOCK_STREAM] and types[socket.SOCK_DGRAM])
  end)

  it("fills canonname with AI_CANONNAME", function()
    support.needs("localhost")
    local infos = assert(socket.getaddrinfo("localhost", nil, socket.AF_INET,
                                            socket.SOCK_STREAM, 0, socket.AI_CANONNAME))
    assert.equal("localhost", infos[1].canonname)
    assert.equal(0, infos[1].address.port)
  end)

  it("passive and service names", function()
    support.needs("services")
    local infos = assert(socket.getaddrinfo(nil, "http", socket.AF_INET, socket.SOCK_STREAM,
                                            0, socket.AI_PASSIVE))
    assert.equal("0.0.0.0:80", tostring(infos[1].address))
  end)

  it("returns nil, msg, EAI code for an unknown service or a non-literal with AI_NUMERICHOST", function()
    local ok, msg, code = socket.getaddrinfo("127.0.0.1", "no-such-service", socket.AF_INET,
                                             socket.SOCK_STREAM)
    assert.is_nil(ok)
    assert.is_string(msg)
    assert.equal(socket.EAI_SERVICE, code)
    ok, msg, code = socket.getaddrinfo("localhost", 80, socket.AF_INET, 0, 0,
                                       socket.AI_NUMERICHOST)
    assert.is_nil(ok)
    assert.equal("Name or service not known", msg)
    assert.equal(socket.EAI_NONAME, code)
    assert.is_true(code < 0)
  end)

  it("a name that does not resolve: nil, msg, code (in a namespace with no network)", function()
    local out, why = run_isolated([[
      local socket = require "socket"
      print(socket.getaddrinfo("no-such-host.invalid", 80))
      print(socket.gethostbyname("no-such-host.invalid"))
      local s = socket.socket()
      print(s:connect({"no-such-host.invalid", 80}))
      print(s:connect_ex({"no-such-host.invalid", 80}))]])
    if not out then print("skipped: " .. why); return end
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(4, #lines, out)
    for _, line in ipairs(lines) do
      local msg, code = line:match("^nil\t(.-)\t(%-%d+)$")
      assert.is_string(msg, out)
      assert.is_true(tonumber(code) < 0, out)
    end
  end)

  it("raises on misuse", function()
    assert.has_error(function() socket.getaddrinfo("localhost", 65536) end,
      "bad argument #2 to 'getaddrinfo' (port 65536 out of range 0..65535)")
    assert.has_error(function() socket.getaddrinfo({}, 80) end,
      "bad argument #1 to 'getaddrinfo' (string expected, got table)")
    assert.has_error(function() socket.getaddrinfo("localhost", 80, "inet") end,
      "bad argument #3 to 'getaddrinfo' (number expected, got string)")
  end)
end)

describe("getnameinfo", function()
  it("gives numeric host and service", function()
    support.needs("services")
    local flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    local host, serv = socket.getnameinfo({"127.0.0.1", 8001}, flags)
    assert.equal("127.0.0.1", host)
    assert.equal("8001", serv)
    host, serv = socket.getnameinfo({"::1", 443}, flags)
    assert.equal("::1", host)
    assert.equal("443", serv)
    host, serv = socket.getnameinfo({"127.0.0.1", 80}, socket.NI_NUMERICHOST)
    assert.equal("127.0.0.1", host)
    assert.equal("http", serv)
  end)

  it("returns nil, msg, code when a name is required and none exists", function()
    local ok, msg, code = socket.getnameinfo({"127.0.0.1", 80},
                                             socket.NI_NUMERICHOST | socket.NI_NAMEREQD)
    assert.is_nil(ok)
    assert.is_string(msg)
    assert.equal(socket.EAI_NONAME, code)
  end)

  it("raises on a host that is not a literal, or a bad port", function()
    assert.has_error(function() socket.getnameinfo({"localhost", 80}) end,
      "bad argument #1 to 'getnameinfo' (literal address expected, got 'localhost')")
    assert.has_error(function() socket.getnameinfo({"127.0.0.1", 1e6}) end,
      "bad argument #1 to 'getnameinfo' (port 1000000 out of range 0..65535)")
    assert.has_error(function() socket.getnameinfo("127.0.0.1") end)
  end)
end)

describe("scoped IPv6 literals (addr%scope)", function()
  local flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV

  -- glibc's getaddrinfo takes an interface name only after a link-local
  -- address; ours takes it after any, so that "[::1%lo]:80", which an
  -- address {"::1", 80, 0, 1} prints as, parses back.  Interface 1 is lo.
  it("getnameinfo takes a scope by number or interface name, on any address", function()
    assert.equal("[::1%lo]:80", tostring(setmetatable({"::1", 80, 0, 1},
                                                      getmetatable(socket.getaddrinfo("::1", 80)[1].address))))
    for _, host in ipairs({"::1%lo", "::1%1"}) do
      local h, serv = socket.getnameinfo({host, 80}, flags)
      assert.equal("::1%1", h, host)               -- glibc names only link-local scopes
      assert.equal("80", serv)
    end
    for _, host in ipairs({"fe80::1%lo", "fe80::1%1"}) do
      assert.equal("fe80::1%lo", (socket.getnameinfo({host, 80}, flags)))
    end
    -- scope_id [4], when given, wins over the %scope (no interface 12345)
    assert.equal("fe80::1%12345", (socket.getnameinfo({"fe80::1%lo", 80, 0, 12345}, flags)))
  end)

  it("a bad scope or address before it raises", function()
    local function raises(host, why)
      assert.has_error(function() socket.getnameinfo({host, 80}, flags) end,
        "bad argument #1 to 'getnameinfo' (" .. why .. ")")
    end
    raises("fe80::1%nosuchif", "unknown interface 'nosuchif' in 'fe80::1%nosuchif'")
    raises("::1%4294967296", "unknown interface '4294967296' in '::1%4294967296'")
    raises("::1%", "empty scope in '::1%'")
    raises("127.0.0.1%lo", "malformed IPv6 address '127.0.0.1%lo'")
    raises("::1::2%lo", "malformed IPv6 address '::1::2%lo'")
    local s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert.has_error(function() s:connect({"127.0.0.1%lo", 9}) end,
      "bad argument #1 to 'connect' (malformed IPv4 address '127.0.0.1%lo')")
    s:close()
  end)

  it("bind and connect take ::1%lo", function()
    local v6, why = support.has_ipv6()
    if not v6 then print("skipped: " .. why); return end
    local s = support.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    assert.is_true(s:bind({"::1%lo", 0}))
    local port = s:getsockname().port
    local c = support.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    assert.is_true(c:connect({"::1%lo", port}))
    assert.equal(port, c:getpeername().port)
    assert(c:send("hi"))
    assert.equal("hi", (s:recv(10)))
    assert.has_error(function() c:connect({"fe80::1%nosuchif", port}) end,
      "bad argument #1 to 'connect' (unknown interface 'nosuchif' in 'fe80::1%nosuchif')")
    c:close(); s:close()
  end)
end)

describe("inet_pton and inet_ntop", function()
  it("round-trip IPv4 and IPv6", function()
    for _, case in ipairs({
      {socket.AF_INET, "127.0.0.1", "\127\0\0\1"},
      {socket.AF_INET, "255.255.255.255", "\255\255\255\255"},
      {socket.AF_INET6, "::1", ("\0"):rep(15) .. "\1"},
      {socket.AF_INET6, "2001:db8::ff00:42:8329", nil},
      {socket.AF_INET6, "::ffff:127.0.0.1", nil},
    }) do
      local bytes = socket.inet_pton(case[1], case[2])
      if case[3] then assert.equal(case[3], bytes) end
      assert.equal(case[1] == socket.AF_INET and 4 or 16, #bytes)
      assert.equal(case[2], socket.inet_ntop(case[1], bytes))
    end
  end)

  it("raise on malformed text, wrong length or family", function()
    assert.has_error(function() socket.inet_pton(socket.AF_INET, "1.2.3") end,
      "bad argument #2 to 'inet_pton' (malformed IPv4 address '1.2.3')")
    assert.has_error(function() socket.inet_pton(socket.AF_INET, "256.1.1.1") end,
      "bad argument #2 to 'inet_pton' (malformed IPv4 address '256.1.1.1')")
    assert.has_error(function() socket.inet_pton(socket.AF_INET6, "1:::2") end,
      "bad argument #2 to 'inet_pton' (malformed IPv6 address '1:::2')")
    assert.has_error(function() socket.inet_ntop(socket.AF_INET, "abc") end,
      "bad argument #2 to 'inet_ntop' (4 bytes expected, got 3)")
    assert.has_error(function() socket.inet_ntop(socket.AF_INET6, "\1\2\3\4") end,
      "bad argument #2 to 'inet_ntop' (16 bytes expected, got 4)")
    assert.has_error(function() socket.inet_pton(socket.AF_UNIX, "x") end,
      "bad argument #1 to 'inet_pton' (AF_INET or AF_INET6 expected)")
  end)
end)

describe("gethostname and gethostbyname", function()
  it("gethostname is the kernel's host name", function()
    local f = assert(io.open("/proc/sys/kernel/hostname"))
    local expected = f:read("l")
    f:close()
    assert.equal(expected, socket.gethostname())
  end)

  it("gethostbyname resolves localhost and literals to IPv4 text", function()
    support.needs("localhost")
    assert.equal("127.0.0.1", socket.gethostbyname("localhost"))
    assert.equal("127.0.0.1", socket.gethostbyname("127.0.0.1"))
    assert.has_error(function() socket.gethostbyname() end)
  end)
end)

describe("name resolution inside tasks", function()
  -- A lookup is handed to a helper thread and the task yields meanwhile,
  -- so a task spawned after it runs before the lookup returns.  Were it
  -- done inline, the order would be the reverse.
  local function yields(lookup)
    local order = {}
    local ok, err = socket.run(function()
      socket.spawn(function()
        lookup()
        order[#order + 1] = "lookup"
      end)
      socket.spawn(function() order[#order + 1] = "other" end)
    end)
    assert.is_true(ok, err)
    assert.same({"other", "lookup"}, order)
  end

  it("getaddrinfo, getnameinfo and gethostbyname yield", function()
    support.needs("localhost")
    yields(function()
      local infos = assert(socket.getaddrinfo("localhost", 80, socket.AF_INET))
      assert.equal("127.0.0.1", infos[1].address.host)
    end)
    yields(function() assert.equal("localhost", (socket.getnameinfo({"127.0.0.1", 80}))) end)
    yields(function() assert.equal("127.0.0.1", socket.gethostbyname("localhost")) end)
  end)

  it("connect and sendto with a name yield", function()
    support.needs("localhost")
    -- UDP: neither call waits for the network, so only the lookup can yield.
    local u, addr = support.bound("udp")
    local port = addr.port
    yields(function() assert.equal(2, u:sendto("hi", {"localhost", port})) end)
    assert.equal("hi", u:recv(10))
    local c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yields(function() assert.is_true(c:connect({"localhost", port})) end)
    assert.equal(port, c:getpeername().port)
    yields(function() assert.is_true(c:connect("localhost", port)) end)
    c:close(); u:close()
  end)

  -- Story: bind and sendmsg resolved a name inline (in
  -- addr_check), stopping every task until the lookup returned; they now
  -- go through addr_resolve as connect and sendto do.
  it("bind and sendmsg with a name yield", function()
    support.needs("localhost")
    local u = support.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yields(function() assert.is_true(u:bind({"localhost", 0})) end)
    local port = u:getsockname().port
    assert.equal("127.0.0.1", u:getsockname().host)
    yields(function() assert.equal(2, u:sendmsg({"hi"}, nil, 0, {"localhost", port})) end)
    assert.equal("hi", u:recv(10))
    local c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yields(function() assert.is_true(c:bind("localhost", 0)) end)
    c:close(); u:close()
  end)
end)

-- Story: strings were handed to C up to their first NUL, so
-- bind({"127.0.0.1\0junk", 0}) bound 127.0.0.1 and inet_pton accepted
-- "127.0.0.1\0junk".  A string with a zero byte where C needs a C string
-- now raises.  And getaddrinfo's hints and getnameinfo's flags
-- were cast to int unchecked (2^32 + 1 became 1).
describe("C strings and integers", function()
  local zero = "string contains a zero byte"
  it("a host, service or text with a zero byte raises", function()
    local s = socket.socket()
    assert.has_error(function() s:bind({"127.0.0.1\0junk", 0}) end,
      "bad argument #1 to 'bind' (" .. zero .. ")")
    assert.has_error(function() s:connect("localhost\0junk", 1) end,
      "bad argument #1 to 'connect' (" .. zero .. ")")
    s:close()
    assert.has_error(function() socket.inet_pton(socket.AF_INET, "127.0.0.1\0junk") end,
      "bad argument #2 to 'inet_pton' (" .. zero .. ")")
    assert.has_error(function() socket.gethostbyname("localhost\0junk") end,
      "bad argument #1 to 'gethostbyname' (" .. zero .. ")")
    assert.has_error(function() socket.getaddrinfo("127.0.0.1\0junk", 80) end,
      "bad argument #1 to 'getaddrinfo' (" .. zero .. ")")
    assert.has_error(function() socket.getaddrinfo("127.0.0.1", "80\0x") end,
      "bad argument #2 to 'getaddrinfo' (" .. zero .. ")")
    -- the same strings without the zero byte still work
    assert.equal(4, #socket.inet_pton(socket.AF_INET, "127.0.0.1"))
    assert(socket.getaddrinfo("127.0.0.1", "80"))
  end)

  it("flags and hints out of the C int range raise", function()
    local big = 2^32 + socket.AI_NUMERICHOST
    assert.has_error(function() socket.getaddrinfo("127.0.0.1", 80, socket.AF_INET, 0, 0, big) end,
      "bad argument #6 to 'getaddrinfo' (integer out of range)")
    assert.has_error(function() socket.getaddrinfo("127.0.0.1", 80, 2^40) end,
      "bad argument #3 to 'getaddrinfo' (integer out of range)")
    assert.has_error(function() socket.getnameinfo({"127.0.0.1", 80}, 2^32 + 1) end,
      "bad argument #2 to 'getnameinfo' (integer out of range)")
    assert.has_error(function() socket.inet_ntop(2^32 + socket.AF_INET, "abcd") end,
      "bad argument #1 to 'inet_ntop' (integer out of range)")
  end)
end)

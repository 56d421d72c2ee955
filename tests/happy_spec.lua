-- happy_spec: create_connection races the addresses of a name as Happy
-- Eyeballs does (RFC 8305): IPv6 first, the next attempt after 250 ms or
-- as soon as one fails, the first to connect wins, the others are closed,
-- and the timeout is one deadline for the whole call.
--
-- The race needs "localhost" to resolve to both ::1 and 127.0.0.1, so the
-- tests run in a child busted inside a namespace of their own (unshare:
-- mount + network), where a hosts file of ours is bind-mounted over
-- /etc/hosts and lo is brought up; the machine's /etc/hosts does not
-- matter.  Without namespaces they run here if localhost already has both
-- addresses, else they are skipped.  Only 127.0.0.1 and ::1 are used.
--
-- A listener that "never answers" has a full accept queue: listen(0) and
-- one connection that is never accepted, after which the kernel drops the
-- SYNs that come (a connect to it hangs, as to a silent host).
local socket = require "socket"
local lfs = require "lfs"
local support = require "tests.support"
local E = socket.errno

local IN_NS = os.getenv("LUASOCK_HAPPY_NS") == "1"
local SPEC = debug.getinfo(1, "S").source:match("^@(.*)$")
local BUSTED = io.open("/usr/bin/busted") and "/usr/bin/busted" or "busted"

-- Whether getaddrinfo("localhost") gives both ::1 and 127.0.0.1.
local function dual_localhost()
  local seen = {}
  for _, ai in ipairs(socket.getaddrinfo("localhost", 0, socket.AF_UNSPEC,
                                         socket.SOCK_STREAM) or {}) do
    seen[ai.address.host] = true
  end
  return seen["::1"] and seen["127.0.0.1"]
end

-- The unshare flags that make a mount and network namespace here
-- (user namespace first, plain as root), or nil.
local function ns_flags()
  for _, flags in ipairs({ "-rmn", "-mn" }) do
    if os.execute("unshare " .. flags .. " true 2>/dev/null") then return flags end
  end
end

-- Open sockets of this process (an epoll set or a pipe does not count).
local function count_sockets()
  local n = 0
  for name in lfs.dir("/proc/self/fd") do
    local target = lfs.symlinkattributes("/proc/self/fd/" .. name, "target")
    if target and target:match("^socket:") then n = n + 1 end
  end
  return n
end

-- Stop the collector for the rest of the test, so that a socket left
-- open and unreferenced stays counted instead of being closed by __gc.
local function no_gc()
  collectgarbage("stop")
  finally(function() collectgarbage("restart") end)
end

-- A listener on host:port (v6 only for ::1) with the given backlog, or
-- nil, msg, errno when the port is taken.
local function listen_on(family, host, port, backlog)
  local s = support.socket(family)
  if family == socket.AF_INET6 then
    assert(s:setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1))
  end
  local ok, msg, code = s:bind({ host, port })
  if not ok then s:close(); return nil, msg, code end
  assert(s:listen(backlog))
  return s
end

-- Fill s's accept queue (it listens with backlog 0): one connection that
-- is never accepted; the kernel drops later SYNs.
local function silence(s, held)
  local c = support.socket(s.family)
  held[#held + 1] = c
  assert(c:connect(s:getsockname()))
end

-- Listeners on 127.0.0.1 (l.v4) and ::1 (l.v6) with one port (l.port);
-- those named in silent ({v4 = true, v6 = true}) never answer.
-- l.close() closes all.
local function listeners(silent)
  for _ = 1, 20 do
    local v4 = listen_on(socket.AF_INET, "127.0.0.1", 0, silent.v4 and 0 or nil)
    local port = v4:getsockname().port
    local v6 = listen_on(socket.AF_INET6, "::1", port, silent.v6 and 0 or nil)
    if v6 then
      local l = { v4 = v4, v6 = v6, port = port, held = {} }
      function l.close()
        for _, s in ipairs(l.held) do s:close() end
        v4:close(); v6:close()
      end
      if silent.v4 then silence(v4, l.held) end
      if silent.v6 then silence(v6, l.held) end
      return l
    end
    v4:close()
  end
  error("no port free on both 127.0.0.1 and ::1")
end

-- create_connection to localhost:port: how long it took (support.timed),
-- then its results.
local function timed_connect(port, timeout, source)
  return support.timed(socket.create_connection, { "localhost", port }, timeout, source)
end

-- Whether srv has no connection waiting to be accepted.
local function nothing_to_accept(srv)
  srv:settimeout(0)
  local conn = srv:accept()
  if conn then conn:close() end
  return conn == nil
end

-- Accept the connection c made on srv and close both ends.
local function check_accepted(srv, c)
  local conn, addr = assert(srv:accept())
  assert.equal(tostring(c:getsockname()), tostring(addr))
  conn:close()
  c:close()
end

local function happy_tests()
  describe("create_connection races the addresses (Happy Eyeballs)", function()
    it("connects over IPv4 after about 250 ms when ::1 never answers, closing the loser",
       function()
      local l = listeners({ v6 = true })
      finally(l.close)
      no_gc()
      local before = count_sockets()
      local dt, c = timed_connect(l.port, 3)
      assert.truthy(c)
      support.assert_took(dt, 0.2, 1.5)
      assert.equal("127.0.0.1", c:getpeername().host)
      assert.equal(3, c:gettimeout())
      assert.equal(before + 1, count_sockets())   -- the winner only
      check_accepted(l.v4, c)
    end)

    it("uses IPv6 at once when ::1 answers", function()
      local l = listeners({})
      finally(l.close)
      no_gc()
      local before = count_sockets()
      local dt, c = timed_connect(l.port, 3)
      assert.truthy(c)
      support.assert_took(dt, 0, 0.2)
      assert.equal("::1", c:getpeername().host)
      assert.equal(before + 1, count_sockets())
      assert.is_true(nothing_to_accept(l.v4), "an IPv4 attempt was made")
      check_accepted(l.v6, c)
    end)

    it("starts the next attempt as soon as one fails (a source address of the other family)",
       function()
      local l = listeners({})
      finally(l.close)
      local dt, c = timed_connect(l.port, 3, { "127.0.0.1", 0 })  -- cannot bind for ::1
      assert.truthy(c)
      support.assert_took(dt, 0, 0.2)
      assert.equal("127.0.0.1", c:getpeername().host)
      check_accepted(l.v4, c)
    end)

    it("returns the default timeout on the socket, blocking semantics back", function()
      finally(function() socket.setdefaulttimeout(nil) end)
      local l = listeners({})
      finally(l.close)
      socket.setdefaulttimeout(1.5)
      local _, c = timed_connect(l.port)
      assert.truthy(c)
      assert.equal(1.5, c:gettimeout())
      assert(c:sendall("x"))
      local conn = assert(l.v6:accept())
      assert.equal("x", conn:recv(1))
      conn:close(); c:close()
    end)

    it("returns the last error, ECONNREFUSED, when every attempt fails, at once", function()
      local l = listeners({})
      l.close()                                    -- both ports closed
      no_gc()
      local before = count_sockets()
      local dt, c, msg, code = timed_connect(l.port, 3)
      assert.is_nil(c)
      assert.equal("Connection refused", msg)
      assert.equal(E.ECONNREFUSED, code)
      support.assert_took(dt, 0, 0.2)     -- no 250 ms wait after a failure
      assert.equal(before, count_sockets())
      -- Even with timeout 0: a refusal comes at once on loopback, and an
      -- attempt that ended keeps its error rather than "timeout".
      dt, c, msg, code = timed_connect(l.port, 0)
      assert.is_nil(c)
      assert.equal("Connection refused", msg)
      assert.equal(E.ECONNREFUSED, code)
      assert.equal(before, count_sockets())
    end)

    it("times out at the deadline of the whole call when no address answers", function()
      local l = listeners({ v4 = true, v6 = true })
      finally(l.close)
      no_gc()
      local before = count_sockets()
      local dt, c, msg, code = timed_connect(l.port, 0.5)   -- both attempts start
      assert.is_nil(c)
      assert.equal("timeout", msg)
      assert.equal(E.ETIMEDOUT, code)
      support.assert_took(dt, 0.49, 1.5)
      assert.equal(before, count_sockets())
      dt, c, msg, code = timed_connect(l.port, 0.1)         -- before the second starts
      assert.is_nil(c)
      assert.equal("timeout", msg)
      assert.equal(E.ETIMEDOUT, code)
      support.assert_took(dt, 0.09, 1)
      assert.equal(before, count_sockets())
    end)
  end)

  describe("create_connection inside a task", function()
    it("lets another task run while it races", function()
      local l = listeners({ v6 = true })
      finally(l.close)
      local ticker, c, dt, ticks = support.ticker(), nil, nil, nil
      socket.spawn(function()
        local t0, ticks0 = socket.gettime(), ticker.n
        local ok
        ok, c = pcall(socket.create_connection, { "localhost", l.port }, 3)
        dt, ticks = socket.gettime() - t0, ticker.n - ticks0
        ticker.stop = true   -- also when the call failed: else run never returns
        assert(ok, c)
      end)
      assert.is_true(socket.run())
      assert.truthy(c)
      assert.is_true(dt >= 0.2, "took " .. dt)
      -- the other task's turns while the race waited: counted, not timed
      assert.is_true(ticks >= 2, "the other task ticked only " .. ticks .. " times")
      assert.equal("127.0.0.1", c:getpeername().host)
      check_accepted(l.v4, c)
    end)

    it("times out inside a task too, closing every attempt", function()
      local l = listeners({ v4 = true, v6 = true })
      finally(l.close)
      no_gc()
      local before = count_sockets()
      local res
      socket.spawn(function()
        res = table.pack(support.timed(socket.create_connection, { "localhost", l.port }, 0.4))
      end)
      assert.is_true(socket.run())
      assert.same({ n = 4, res[1], nil, "timeout", E.ETIMEDOUT }, res)
      support.assert_took(res[1], 0.39, 1.5)
      assert.equal(before, count_sockets())
    end)

    it("closes the pending attempts when its task is closed while it races", function()
      local l = listeners({ v4 = true, v6 = true })
      finally(l.close)
      no_gc()
      local before = count_sockets()
      local racer, closed, ok
      local select = socket.select
      finally(function() socket.select = select end)
      -- When the race first waits in select, another task closes it.
      socket.select = function(...)
        socket.select = select
        closed = count_sockets() - before   -- the attempt under way
        socket.spawn(function() ok = racer:cancel() end)
        return select(...)
      end
      racer = socket.spawn(function()
        socket.create_connection({ "localhost", l.port }, 2)
        error("create_connection returned in a closed task")
      end)
      assert.is_true(socket.run())
      assert.equal(1, closed)
      assert.is_true(ok)
      assert.equal(before, count_sockets())
    end)
  end)
end

if IN_NS then
  assert(dual_localhost(), "localhost should resolve to ::1 and 127.0.0.1 in the namespace")
  happy_tests()
else
  local flags = ns_flags()
  if not flags and dual_localhost() then
    happy_tests()
  else
    describe("Happy Eyeballs", function()
      it("passes its tests in a namespace whose localhost is ::1 and 127.0.0.1", function()
        if not flags then
          print("skipped: no namespace, and localhost is not both ::1 and 127.0.0.1")
          return
        end
        local hosts = support.temp_file("127.0.0.1 localhost\n::1 localhost\n", "hosts")
        local sh = 'mount --bind "$1" /etc/hosts && ip link set lo up && ' ..
                   'LUASOCK_HAPPY_NS=1 exec "$2" "$3" --helper=tests/helpers.lua -o TAP "$4"'
        local c = support.start({ "unshare", flags, "sh", "-c", sh, "sh", hosts, support.LUASOCK,
                               BUSTED, SPEC }, { stdin = "null", stderr = "socket" })
        local out = c:rest(30)
        local status = c:wait(5)
        assert.equal(0, status, tostring(out))
        assert.matches("\nok %d+ ", "\n" .. out)
        assert.not_matches("not ok", out)
      end)
    end)
  end
end

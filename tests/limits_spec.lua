-- limits_spec: what a peer can make a luasock process do, and what it
-- cannot.
--
-- Line limit.  A stream read with "l", "L" or lines() used to buffer until
-- a '\n' came, however long that took: 300 MiB without a newline sent to
-- a server doing conn:makefile():read("l") grew it by 600 MiB, and every
-- line-protocol server (http_hello.lua, redis_server.lua, chat.lua) could
-- be driven out of memory by one connection.  read("n") against a flood
-- of spaces kept every skipped space (+300 MiB for 300 MiB).  Now a line
-- longer than the stream's limit (64 KiB by default, as asyncio's) gives
-- nil, "line too long", EMSGSIZE as soon as the limit is passed, with the
-- bytes left readable, and "n" skips spaces in constant memory.
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

-- Every socket has a timeout, so the loop drains in bounded time.
local function run() return support.run_ok(30) end

-- The values of a call, long strings shown by their length (a failure
-- message stays readable).
local function shape(...)
  local t = table.pack(...)
  for i = 1, t.n do
    if type(t[i]) == "string" and #t[i] > 64 then t[i] = ("<%d bytes>"):format(#t[i]) end
  end
  return t
end

-- The process's resident memory in KiB (stream buffers bypass the Lua
-- collector's count).
local function kib()
  for line in io.lines("/proc/self/status") do
    local n = line:match("^VmRSS:%s*(%d+)")
    if n then return tonumber(n) end
  end
end

local FLOOD = 512   -- chunks of 64 KiB: 32 MiB

describe("line limit", function()
  it("a line past 64 KiB fails at once with its bytes left readable", function()
    local a, b = support.pair()
    local f = b:makefile()
    assert(a:sendall(("x"):rep(65536) .. "\n" .. ("y"):rep(65537) .. "\nrest\n"))
    assert.equal(65536, #f:read("l"))                     -- exactly the limit: a line
    assert.same(shape(nil, "line too long", E.EMSGSIZE), shape(f:read("l")))
    assert.same(shape(nil, "line too long", E.EMSGSIZE), shape(f:read("L")))
    assert.equal(("y"):rep(65537) .. "\n", f:read(65538))  -- nothing was lost
    assert.equal("rest", f:read("l"))
    f:close(); a:close(); b:close()
  end)

  it("fails before the peer sends a newline, without waiting for more", function()
    local a, b = support.pair()
    local f = b:makefile()
    assert(a:sendall(("x"):rep(70000)))       -- and the peer stays silent
    local t0 = socket.gettime()
    assert.same(shape(nil, "line too long", E.EMSGSIZE), shape(f:read("l")))
    assert.is_true(socket.gettime() - t0 < 1, "waited for the timeout")
    f:close(); a:close(); b:close()
  end)

  it("counts the limit in bytes before the '\\n', also at end of stream", function()
    local a, b = support.pair()
    local f = b:makefile("r", { max_line = 4 })
    assert(a:sendall("abcd\nabcde\nabcd"))
    a:close()
    assert.equal("abcd\n", f:read("L"))
    assert.same(shape(nil, "line too long", E.EMSGSIZE), shape(f:read("L")))
    assert.equal("abcde\n", f:read(6))
    assert.equal("abcd", f:read("l"))              -- a last line without '\n'
    assert.is_true(f:setlimit(3))
    assert.is_nil(f:read("l"))
    f:close(); b:close()
  end)

  it("setlimit changes the limit of the next read", function()
    local a, b = support.pair()
    local f = b:makefile()
    assert(a:sendall(("z"):rep(100000) .. "\n"))
    assert.same(shape(nil, "line too long", E.EMSGSIZE), shape(f:read("l")))
    assert.is_true(f:setlimit(100000))
    assert.equal(100000, #f:read("l"))
    f:close(); a:close(); b:close()
  end)

  it("ends a lines() loop with nil, 'line too long' instead of raising", function()
    local a, b = support.pair()
    local f = b:makefile("r", { max_line = 8 })
    assert(a:sendall("short\nmuch too long\n"))
    local got, it = {}, f:lines()
    for line in it do got[#got + 1] = line end
    assert.same({ "short" }, got)
    assert.same({ nil, "line too long", E.EMSGSIZE }, { it() })
    assert.equal("much too long\n", f:read(14))
    f:close(); a:close(); b:close()
  end)

  it("checks the limit's arguments", function()
    local a, b = support.pair()
    assert.error_matches(function() a:makefile("r", { max_line = 0 }) end,
      "max_line must be a positive integer")
    assert.error_matches(function() a:makefile("r", { max_line = 1.5 }) end,
      "max_line must be a positive integer")
    assert.error_matches(function() a:makefile("r", { maxline = 10 }) end,
      "unknown option 'maxline'")
    assert.error_matches(function() a:makefile("r", { 10 }) end, "unknown option '1'")
    assert.error_matches(function() a:makefile("r", 10) end, "table expected, got number")
    local f = a:makefile()
    assert.error_matches(function() f:setlimit(-1) end, "line limit must be positive")
    assert.error_matches(function() f:setlimit("x") end, "number expected")
    f:close()
    assert.error_matches(function() f:setlimit(10) end, "attempt to use a closed stream")
    a:close(); b:close()
  end)

  -- The peer writes 32 MiB; the reader's memory is sampled between writes.
  local function flood(format, byte)
    local a, b = support.pair("socketpair", 20)   -- a deadline for the whole 32 MiB read, on a loaded machine
    local base, peak, res = kib(), 0, nil
    socket.spawn(function()
      local f = b:makefile()
      res = table.pack(f:read(format))
      f:close(); b:close()   -- the writer stops on EPIPE
    end)
    socket.spawn(function()
      local chunk = byte:rep(65536)
      for _ = 1, FLOOD do
        if res then break end
        if not a:sendall(chunk) then break end
        peak = math.max(peak, kib() - base)
      end
      if format == "n" then assert(a:sendall("42 ")) end
      a:close()
    end)
    run()
    b:close()
    return res, peak
  end

  it("a task reading a line from a flood holds at most ~2 limits of input", function()
    local res, peak = flood("l", "x")
    assert.same(shape(nil, "line too long", E.EMSGSIZE), shape(table.unpack(res, 1, res.n)))
    assert.is_true(peak < 8192, ("grew by %.0f KiB"):format(peak))
  end)

  it("read('n') skips 32 MiB of spaces in constant memory", function()
    local res, peak = flood("n", " ")
    assert.same({ 42, n = 1 }, res)
    assert.is_true(peak < 8192, ("grew by %.0f KiB"):format(peak))
  end)

  -- Found by fuzzing (tests/fuzz/stream.lua): a read starts its formats
  -- over when input arrives, and "n" had dropped every space it skipped,
  -- so a read(0) before it, run again, found nothing left and gave nil
  -- where Lua's io gives "".
  it("read(0) before 'n' still sees the spaces 'n' dropped", function()
    local a, b = support.pair()
    local f = b:makefile()
    assert(a:sendall("x\f\f"))
    assert.equal("x", f:read(1))
    a:shutdown(socket.SHUT_WR)   -- "n" meets the end of the stream only on its next try
    assert.same({ "", nil, n = 2 }, table.pack(f:read(0, "n", "l")))
    f:close(); a:close(); b:close()
  end)

  it("read('n') after another format skips spaces without keeping them", function()
    local a, b = support.pair("socketpair", 20)
    local f = b:makefile()
    local base, peak, res = kib(), 0, nil
    socket.spawn(function() res = table.pack(f:read("l", "n")) end)
    socket.spawn(function()
      local tabs = ("\t"):rep(65536)
      assert(a:sendall("head\n"))
      for _ = 1, FLOOD do
        assert(a:sendall(tabs))
        peak = math.max(peak, kib() - base)
      end
      assert(a:sendall("7\n"))
    end)
    run()
    assert.same({ "head", 7, n = 2 }, res)
    assert.is_true(peak < 8192, ("grew by %.0f KiB"):format(peak))
    f:close(); a:close(); b:close()
  end)
end)

-- The line-protocol scripts close a client whose line is too long (or
-- whose request is too big) and go on serving the others.
describe("line-protocol scripts under a flood without newlines", function()
  local support = require "tests.support"

  -- Start scripts/name on 127.0.0.1 port 0; returns it and its port.
  local function start(name, prefix)
    local server = support.start(support.script(name, "127.0.0.1", "0"), { stdin = "null" })
    local _, port = server:address(prefix)
    return server, port
  end

  -- Send data until the server hangs up; true once it did (within 2 s
  -- of a read timeout), false if it kept the connection open.
  local function hung_up(s, data)
    s:sendall(data)   -- may fail with EPIPE or ECONNRESET once it hangs up
    while true do
      local got, err = s:recv(65536)
      if got == "" or err == "Connection reset by peer" then return true end
      if not got then return false end
    end
  end

  local cases = {
    { "http_hello.lua", "HTTP server at:", "GET / HTTP/1.0\r\n\r\n", "^HTTP/1.1 200 OK" },
    { "redis_server.lua", "Redis server at:", "PING\r\n", "^%+PONG" },
    { "chat.lua", "Chat server at:", "", "^%* welcome" },
  }
  for _, case in ipairs(cases) do
    local name, prefix, request, answer = table.unpack(case)
    it(name .. " closes the client with a 200 KB line and serves the next", function()
      local server, port = start(name, prefix)
      local bad <close> = support.connect(port)
      assert.is_true(hung_up(bad, ("A"):rep(200 * 1024)), "the server kept the connection")
      local good <close> = support.connect(port)
      assert(good:sendall(request))
      local got = assert(good:recv(4096))
      assert.is_truthy(got:find(answer), got)
      assert.equal("", server:stderr())
    end)
  end

  it("redis_server.lua refuses a bulk string past its request limit", function()
    local server, port = start("redis_server.lua", "Redis server at:")
    local c <close> = support.connect(port)
    assert(c:sendall("*2\r\n$3\r\nGET\r\n$100000000000\r\n"))
    assert.equal("-ERR Protocol error: invalid bulk length\r\n", c:recv(4096))
    assert.equal("", c:recv(4096))
    assert.equal("", server:stderr())
  end)

  it("http_hello.lua skips a huge body in pieces", function()
    local server, port = start("http_hello.lua", "HTTP server at:")
    local c <close> = support.connect(port)
    assert(c:sendall("POST / HTTP/1.1\r\nContent-Length: 100000000000000\r\n\r\nabc"))
    c:shutdown(socket.SHUT_WR)
    assert.equal("", c:recv(4096))   -- the body ended early: no answer
    assert.equal("", server:stderr())
  end)
end)

-- Memory that tasks and sockets take is given back: the second of two
-- identical rounds (the first warms the allocator, the run queue and the
-- timer heap up) must not leave the process bigger than the first did.
describe("memory after many tasks and sockets", function()
  local support = require "tests.support"

  local PROLOGUE = [[
    local socket = require "socket"
    local function rss()
      collectgarbage(); collectgarbage()
      for line in io.lines("/proc/self/status") do
        local n = line:match("^VmRSS:%s*(%d+)")
        if n then return tonumber(n) end
      end
    end
  ]]

  -- The Lua heap is the precise measure.  RSS is coarse: glibc keeps the
  -- pages it freed, and how much garbage piles up between collections
  -- varies, so the process grows by up to ~2.5 MiB over the first rounds
  -- of 100,000 sockets before it levels off; 4 MiB is below what a leak of
  -- 40 bytes a socket (400 a task) would add in one round.  ASan keeps
  -- freed memory in quarantine, so RSS says nothing there; LeakSanitizer
  -- checks that build's C memory at exit instead.
  local function check_rss(growth)
    if support.SANITIZED then return end
    assert.is_true(growth < 4096, ("RSS grew by %d KiB"):format(growth))
  end

  local function rounds(body)
    local r = support.run({ support.LUASOCK, "-e", PROLOGUE .. body .. [[
      round(); local first, lua1 = rss(), collectgarbage("count")
      round(); local second, lua2 = rss(), collectgarbage("count")
      print(second - first, lua2 - lua1)
    ]] }, { limit = 60 })
    local rss_growth, lua_growth = r.out:match("^(%-?%d+)%s+(%-?[%d.e+-]+)")
    assert(rss_growth, r.out .. r.err)
    return tonumber(rss_growth), tonumber(lua_growth)
  end

  it("10,000 tasks that yield, sleep and end", function()
    local rss, lua = rounds([[
      local function round()
        for i = 1, 10000 do
          socket.spawn(function() coroutine.yield(); socket.sleep(i % 3 == 0 and 0.001 or 0) end)
        end
        assert(socket.run())
      end
    ]])
    check_rss(rss)
    assert.is_true(lua < 64, ("the Lua heap grew by %.0f KiB"):format(lua))
  end)

  it("100,000 sockets closed or collected", function()
    local rss, lua = rounds([[
      local function round()
        for i = 1, 50000 do
          local s = assert(socket.socket(i % 2 == 0 and socket.AF_INET or socket.AF_UNIX))
          if i % 3 == 0 then local f = s:makefile("rw"); f:close() end
          s:close()
        end
        for i = 1, 50000 do   -- left to the collector (in time for a limit of 1024)
          assert(socket.socket())
          if i % 500 == 0 then collectgarbage() end
        end
      end
    ]])
    check_rss(rss)
    assert.is_true(lua < 64, ("the Lua heap grew by %.0f KiB"):format(lua))
  end)
end)

-- At the descriptor limit.  Under `ulimit -n 64` with 100 clients, the
-- README's task-per-connection echo server used ~95 % of a core, grew by
-- ~150 MiB/s and never served anyone again: accept in a task returned
-- nil, "Too many open files" at once, so the tasks that would free
-- descriptors never ran, and each turn spawned another task; a script
-- with assert(s:accept()) lost its accept task at the first EMFILE.  Now
-- accept backs off (a short timer) until descriptors free up, and the
-- servers serve again once the flood ends, using little CPU meanwhile.
describe("servers at a descriptor limit of 64", function()
  local support = require "tests.support"

  -- The README's concurrent echo server, on a port of the system's choice.
  local README_ECHO = [[
    local socket = require "socket"
    io.stdout:setvbuf("line")
    local s = socket.create_server({"127.0.0.1", 0})
    print("Echo server at: " .. tostring(s:getsockname()))
    socket.run(function()
      while true do
        local conn, addr = s:accept()   -- nil, err: that connection failed
        if conn then
          socket.spawn(function()
            while true do
              local data = conn:recv(1024)
              if not data or data == "" then break end
              conn:sendall(data)
            end
            conn:close()
          end)
        end
      end
    end)
  ]]

  local SERVERS = {
    { "README echo", nil, "Echo server at:", "hello\n", "^hello" },
    { "server.lua", "server.lua", "Server start at:", "hi", "^server received you message%." },
    { "http_hello.lua", "http_hello.lua", "HTTP server at:", "GET / HTTP/1.0\r\n\r\n", "^HTTP/1.1 200" },
    { "redis_server.lua", "redis_server.lua", "Redis server at:", "PING\r\n", "^%+PONG" },
    { "chat.lua", "chat.lua", "Chat server at:", "", "^%* welcome" },
  }

  local TICKS = 100   -- clock ticks per second (USER_HZ)

  -- CPU seconds the server uses over the next `seconds` of wall time.
  local function cpu_over(server, seconds)
    local before = server:cputicks()
    socket.sleep(seconds)   -- the measure is about time: nothing to wait for
    return (server:cputicks() - before) / TICKS
  end

  -- accept out of descriptors, in a child under `ulimit -n 32` whose
  -- descriptors are all taken (a client waits in the backlog).
  local BACKOFF = [[
    local socket = require "socket"
    local l = assert(socket.create_server({ "127.0.0.1", 0 }))
    local c = assert(socket.socket())
    c:settimeout(0)
    c:connect(l:getsockname())
    local hog = {}
    while true do
      local s = socket.socket()
      if not s then break end
      hog[#hog + 1] = s
    end
    l:settimeout(0)
    print("non-blocking", select(2, l:accept()))
    l:settimeout(0.3)
    local t0 = socket.gettime()
    local ok, err = l:accept()
    print("outside", err, socket.gettime() - t0 >= 0.25)
    l:settimeout(5)
    socket.spawn(function()
      local conn = l:accept()
      print("task", conn ~= nil and conn:getpeername() == c:getsockname())
    end)
    socket.spawn(function() socket.sleep(0.3); table.remove(hog):close() end)
    assert(socket.run())
    socket.spawn(function() print("closed", select(2, l:accept())) end)
    socket.spawn(function() socket.sleep(0.2); l:close() end)
    assert(socket.run())
  ]]

  it("accept backs off out of descriptors: in a task until one is freed", function()
    local cmd = "ulimit -n 32 && exec " .. support.quote(support.LUASOCK) .. " -e " ..
      support.quote(BACKOFF)
    local r = support.run({ "sh", "-c", cmd })
    assert.equal("non-blocking\tToo many open files\t24\n" ..   -- EMFILE
      "outside\ttimeout\ttrue\n" .. "task\ttrue\n" .. "closed\tclosed\t9\n", r.out .. r.err)
  end)

  for _, case in ipairs(SERVERS) do
    local name, script, prefix, request, answer = table.unpack(case)
    it(name .. " serves again after a flood of 300 connections", function()
      local path = script and ("scripts/" .. script) or support.temp_file(README_ECHO, "echo.lua")
      local cmd = "ulimit -n 64 && exec " .. support.quote(support.LUASOCK) .. " " ..
        support.quote(path) .. (script and " 127.0.0.1 0" or "")
      local server = support.start({ "sh", "-c", cmd }, { stdin = "null", stdout = "pipe" })
      local _, port = server:address(prefix)
      local flood = {}
      for i = 1, 300 do
        local c = assert(socket.socket())
        c:settimeout(0)
        c:connect({ "127.0.0.1", port })   -- in progress: the server's backlog takes it
        flood[i] = c
      end
      local busy = cpu_over(server, 1)
      assert.is_true(busy < 0.5, ("%.2f s of CPU in 1 s at the limit"):format(busy))
      for _, c in ipairs(flood) do c:close() end
      local c <close> = support.connect(port)
      c:settimeout(10)   -- the server first closes what the flood left it
      assert(c:sendall(request))
      local got = assert(c:recv(4096))
      assert.is_truthy(got:find(answer), got)
      local idle = cpu_over(server, 1)
      assert.is_true(idle < 0.2, ("%.2f s of CPU in 1 s after the flood"):format(idle))
    end)
  end
end)

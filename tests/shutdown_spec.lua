-- shutdown_spec: scripts that use the cooperation primitives.  server.lua
-- and proxy.lua end cleanly on SIGTERM, also under load: they stop
-- accepting, let the connections under way finish (5 s at most, then
-- close them) and exit with status 0.  fanout.lua races several servers
-- under one deadline: the first answer wins, the rest are cancelled.
local socket = require "socket"
local support = require "tests.support"

local script = support.script

-- Send SIGTERM to child c.
local function term(c)
  assert(os.execute("kill -TERM " .. c.pid))
end

-- n clients of port that each keep exchanging msg and reply until the
-- server goes away; returns the state, whose `exchanges` counts the
-- replies and `ended` the clients whose connection ended.
local function load(port, n, msg, reply)
  local st = { exchanges = 0, ended = 0, started = socket.event() }
  for _ = 1, n do
    socket.spawn(function()
      local c <close> = support.connect(port)
      c:settimeout(10)
      while true do
        if not c:sendall(msg) then break end
        local got = c:recv(#reply)
        if got ~= reply then break end
        st.exchanges = st.exchanges + 1
        if st.exchanges >= n then st.started:set() end
      end
      st.ended = st.ended + 1
    end)
  end
  return st
end

describe("SIGTERM", function()
  it("ends server.lua with 0 under load: clients are let go after the grace time", function()
    local server = support.start(script("server.lua", "127.0.0.1", "0"), { stdin = "null" })
    local _, port = server:address("Server start at:")
    local st = load(port, 20, "ping", "server received you message.")
    assert.is_true(st.started:wait(10))    -- every client talks (the loop turns here)
    local t0 = socket.gettime()
    term(server)
    assert(server:rest(12))                -- its output, to its end: the clients talk meanwhile
    local took = socket.gettime() - t0
    local ok, err = socket.run()           -- the clients ended when the server closed them
    assert(ok, err)
    assert.equal(0, server:wait(10))
    assert.equal(20, st.ended)
    assert.is_true(took >= 4.5 and took < 9, ("the server took %.2f s"):format(took))
    assert.equal("", server:stderr())
    local c = socket.socket()              -- no longer listening
    assert.equal(socket.errno.ECONNREFUSED, c:connect_ex({ "127.0.0.1", port }))
    c:close()
  end)

  it("ends server.lua at once when its clients leave", function()
    local server = support.start(script("server.lua", "127.0.0.1", "0"), { stdin = "null" })
    local _, port = server:address("Server start at:")
    local c = support.connect(port)
    server:expect("^Connected by")
    local t0 = socket.gettime()
    term(server)
    c:sendall("last words")               -- still served while it stops
    assert.equal("server received you message.", c:recv(100))
    c:close()
    assert.equal(0, server:wait(4))
    assert.is_true(socket.gettime() - t0 < 4)
  end)

  it("ends proxy.lua with 0 under load", function()
    local echo = support.start({ "socat", "-d", "-d", "TCP-LISTEN:0,bind=127.0.0.1,fork", "EXEC:cat" },
      { stdin = "null", stderr = "socket" })
    local target = tonumber(echo:expect("listening on AF=2 127%.0%.0%.1:(%d+)$"))
    local proxy = support.start(script("proxy.lua", "127.0.0.1", "0", "127.0.0.1", target),
      { stdin = "null" })
    local port = tonumber(proxy:expect("^Proxy at: 127%.0%.0%.1:(%d+)"))
    local st = load(port, 10, "echo me", "echo me")
    assert.is_true(st.started:wait(10))
    term(proxy)
    assert(proxy:rest(12))
    local ok, err = socket.run()
    assert(ok, err)
    assert.equal(0, proxy:wait(10))
    assert.equal(10, st.ended)
  end)
end)

describe("scripts/fanout.lua", function()
  -- A server on a free port that answers each line after delay seconds
  -- (never when delay is nil); returns its port and its listener.
  local function server(name, delay)
    local l = assert(socket.create_server({ "127.0.0.1", 0 }))
    socket.spawn(function()
      while true do
        local c = l:accept()
        if not c then break end
        socket.spawn(function()
          local _ <close> = c
          local line = c:makefile("r"):read("l")
          if not line or not delay then c:recv(1); return end
          socket.sleep(delay)
          c:sendall(name .. " says " .. line .. "\n")
        end)
      end
    end)
    return l:getsockname().port, l
  end

  it("prints the first answer and cancels the others", function()
    local fast, l1 = server("fast", 0)
    local slow, l2 = server("slow", 3)
    local silent, l3 = server("silent", nil)
    local t0 = socket.gettime()
    local c = support.start(script("fanout.lua", "5", "hi", "127.0.0.1:" .. slow,
      "127.0.0.1:" .. silent, "127.0.0.1:" .. fast), { stdin = "null" })
    assert.equal("127.0.0.1:" .. fast .. " answered: fast says hi", c:line(5))
    assert.equal("2 other attempt(s) cancelled", c:line(5))
    assert.equal(0, c:wait(5))
    assert.is_true(socket.gettime() - t0 < 2.5)
    for _, l in ipairs({ l1, l2, l3 }) do l:close() end
    assert(socket.run())
  end)

  it("gives up at its deadline with status 1", function()
    local silent, l = server("silent", nil)
    local t0 = socket.gettime()
    local c = support.start(script("fanout.lua", "0.3", "hi", "127.0.0.1:" .. silent),
      { stdin = "null" })
    assert.equal("no answer within 0.3 s", c:line(5))
    assert.equal(1, c:wait(5))
    local took = socket.gettime() - t0
    assert.is_true(took >= 0.3 and took < 3, "took " .. took)
    l:close()
    assert(socket.run())
  end)
end)

-- tests/apps_spec.lua: the task-based scripts (chat, HTTP, Redis, proxy)
-- against real clients nobody on this project wrote: nc, socat, curl,
-- wrk, redis-cli and redis-benchmark.  Every program runs as a child of
-- the test (support.start): output read with a time limit, killed and
-- reaped after the test.  Servers listen on port 0 of 127.0.0.1 and the
-- test reads the address they print.
local socket = require "socket"
local support = require "tests.support"

local script = support.script

-- Start a server script on 127.0.0.1 port 0; returns it and its port.
local function start_server(name, prefix, ...)
  local server = support.start(script(name, "127.0.0.1", "0", ...), { stdin = "null" })
  local _, port = server:address(prefix)
  return server, port
end

-- Run a program to its end; returns its output and exit status.
local function run(argv, timeout)
  local c = support.start(argv, { stdin = "null" })
  local out, err = c:rest(timeout)
  assert(out, ("%s: %s"):format(argv[1], tostring(err)))
  return out, c:wait(timeout), c
end

-- Seconds for 50 rounds of 16 pipelined requests, each round read back
-- in full (count lines of the answer per request, read from stream f)
-- before the next.  A server that flushes each answer with Nagle's
-- algorithm on waits for the client's delayed ACK (40 ms at least) every
-- round: 2 s or more in all, where 1.5 s leaves room for a loaded machine.
local function pipelined_rounds(port, request, lines_per_answer)
  local s <close> = support.connect(port)
  local f <close> = s:makefile("r")
  local t0 = socket.gettime()
  for _ = 1, 50 do
    assert(s:sendall(request:rep(16)))
    for _ = 1, 16 * lines_per_answer do assert(f:read("L")) end
  end
  return socket.gettime() - t0
end

describe("scripts/chat.lua", function()
  it("broadcasts each line to the other clients, with join and leave notices", function()
    local server, port = start_server("chat.lua", "Chat server at:")
    local function join(argv)
      local c = support.start(argv, { stdin = "pipe" })
      local name = c:expect("^%* welcome, you are (127%.0%.0%.1:%d+)$")
      assert.are.equal(name .. " joined", server:line())
      return c, name
    end
    local a, na = join({ "nc", "-N", "127.0.0.1", port })
    local b, nb = join({ "nc", "-N", "127.0.0.1", port })
    local c, nc = join({ "socat", "-", "TCP:127.0.0.1:" .. port })
    assert.are.equal("* " .. nb .. " joined", a:line())
    assert.are.equal("* " .. nc .. " joined", a:line())
    assert.are.equal("* " .. nc .. " joined", b:line())

    b:send("hello from b\n")
    assert.are.equal(nb .. ": hello from b", a:line())
    assert.are.equal(nb .. ": hello from b", c:line())
    c:send("hi from c\r\n")
    assert.are.equal(nc .. ": hi from c", a:line())
    assert.are.equal(nc .. ": hi from c", b:line())   -- b never got its own line

    a:close_stdin()                                  -- nc -N: a leaves
    assert.are.equal("", a:rest())
    assert.are.equal(0, a:wait())
    assert.are.equal(na .. " left", server:line())
    assert.are.equal("* " .. na .. " left", b:line())
    assert.are.equal("* " .. na .. " left", c:line())
    b:send("still here\n")
    assert.are.equal(nb .. ": still here", c:line())
  end)
  -- Two tasks may not wait to write on one socket at once: when a client
  -- reads slowly, the others' lines for it must queue, not raise.
  it("keeps every line for a client that reads slowly", function()
    local server, port = start_server("chat.lua", "Chat server at:")
    local slow <close> = assert(socket.socket())
    assert(slow:setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096))
    slow:settimeout(2)
    assert(slow:connect({ "127.0.0.1", port }))
    server:expect(" joined$")
    local a <close> = support.connect(port)
    server:expect(" joined$")
    local b <close> = support.connect(port)
    server:expect(" joined$")
    local N, line = 4000, ("x"):rep(1000)
    local got = {}
    local ok, err = socket.run(function()
      for _, sender in ipairs({ a, b }) do
        local tag = tostring(sender:getsockname())
        socket.spawn(function()          -- read what the other one says
          local f = sender:makefile("r")
          while f:read("l") do end
          f:close()
        end)
        socket.spawn(function()
          for i = 1, N do assert(sender:sendall(i .. " " .. line .. "\n")) end
          assert(sender:shutdown(socket.SHUT_WR))
        end)
        got[tag] = 0
      end
      socket.sleep(0.3)                  -- slow: let the buffers fill up first
      local f = slow:makefile("r")
      while true do
        local l = f:read("l")
        if not l then break end
        local from, i = l:match("^(127%.0%.0%.1:%d+): (%d+) x+$")
        if from then
          assert.are.equal(got[from] + 1, tonumber(i))   -- in order, none lost
          got[from] = got[from] + 1
          if got[from] == N and got[tostring(a:getsockname())] == N
             and got[tostring(b:getsockname())] == N then break end
        end
      end
      f:close()
    end)
    assert(ok, err)
    assert.are.same({ [tostring(a:getsockname())] = N, [tostring(b:getsockname())] = N }, got)
    assert.are.equal("", server:stderr())
  end)
  -- Two senders: the first one's task ends up writing to a client that
  -- never reads, the second one's lines pile up in that client's outbox
  -- until the server drops the client; then both senders go on.
  it("drops a client that never reads once 10000 lines wait for it", function()
    local server, port = start_server("chat.lua", "Chat server at:")
    local deaf <close> = support.connect(port)
    local deaf_name = tostring(deaf:getsockname())
    assert.are.equal(deaf_name .. " joined", server:line())
    local a <close> = support.connect(port)
    server:expect(" joined$")
    local b <close> = support.connect(port)
    server:expect(" joined$")
    local line = ("y"):rep(99) .. "\n"
    a:settimeout(10); b:settimeout(10)   -- the server is slow to drain them under ASan
    local ok, err = socket.run(function()
      for _, sender in ipairs({ a, b }) do
        socket.spawn(function()          -- read what the other one says
          local f = sender:makefile("r")
          while f:read("l") do end
          f:close()
        end)
        socket.spawn(function()
          for _ = 1, 30000 do assert(sender:sendall(line)) end
          assert(sender:shutdown(socket.SHUT_WR))
        end)
      end
    end)
    assert(ok, err)
    server:expect("^" .. deaf_name:gsub("%p", "%%%0") .. " left$")
    assert.are.equal("", server:stderr())
  end)
end)

describe("scripts/http_hello.lua", function()
  -- Each test starts the server first; it is killed and reaped after the
  -- test, before the descriptor check.
  local port
  local function start()
    port = select(2, start_server("http_hello.lua", "HTTP server at:"))
  end

  local function url(path) return ("http://127.0.0.1:%d%s"):format(port, path or "/") end

  -- What curl -v says when it sends on a connection it kept: "Re-using
  -- existing connection" in curl 7.88 (Debian 12), "Re-using existing
  -- http: connection" in 8.14 (Debian 13).
  local REUSED = "Re%-using existing [%w:]*%s?connection"

  it("answers curl twice on one kept-alive connection", function()
    start()
    local out, status, c = run({ "curl", "-sS", "-v", "--max-time", "5",
      url("/"), url("/again") })
    assert.are.equal(0, status, c:stderr())
    assert.are.equal("Hello, world!\nHello, world!\n", out)
    local log = c:stderr()
    assert.matches(REUSED, log)
    local _, connects = log:gsub("Connected to 127%.0%.0%.1", "")
    assert.are.equal(1, connects, log)
    local _, lengths = log:gsub("< Content%-Length: 14", "")
    assert.are.equal(2, lengths, log)
  end)

  it("keeps an HTTP/1.0 connection open when asked, and says so", function()
    start()
    local out, status, c = run({ "curl", "-sS", "-v", "-0", "-H", "Connection: keep-alive",
      "--max-time", "5", url("/"), url("/") })
    assert.are.equal(0, status, c:stderr())
    assert.are.equal("Hello, world!\nHello, world!\n", out)
    assert.matches("< Connection: keep%-alive", c:stderr())
    assert.matches(REUSED, c:stderr())
  end)

  it("closes the connection after Connection: close and for HTTP/1.0", function()
    start()
    for _, extra in ipairs({ { "-H", "Connection: close" }, { "-0" } }) do
      local argv = { "curl", "-sS", "-v", "--max-time", "5", table.unpack(extra) }
      argv[#argv + 1] = url("/")
      local out, status, c = run(argv)
      assert.are.equal(0, status, c:stderr())
      assert.are.equal("Hello, world!\n", out)
      assert.matches("< Connection: close", c:stderr())
    end
  end)

  it("answers pipelined requests in order, then closes on Connection: close", function()
    start()
    local s <close> = support.connect(port)
    assert(s:sendall("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
      .. "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
      .. "HEAD /3 HTTP/1.1\r\nHost: x\r\n\r\n"
      .. "GET /4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    local ok_head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n"
    local answer = ok_head .. "\r\nHello, world!\n"
    assert.are.equal(answer .. answer .. ok_head .. "\r\n"
      .. ok_head .. "Connection: close\r\n\r\nHello, world!\n", support.recv_all(s))
  end)

  it("answers pipelined requests without waiting for ACKs (TCP_NODELAY)", function()
    start()
    -- Each answer is 5 lines: status, 2 headers, blank line, body.
    local t = pipelined_rounds(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5)
    assert.is_true(t < 1.5, ("50 rounds took %.2f s"):format(t))
  end)

  it("answers a malformed request with 400 and closes", function()
    start()
    for _, request in ipairs({ "hello there\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: lots\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" }) do
      local s <close> = support.connect(port)
      assert(s:sendall(request))
      assert.matches("^HTTP/1.1 400 Bad Request\r\n.*Connection: close\r\n\r\nBad Request\n$",
        support.recv_all(s))
    end
  end)

  -- wrk for 2 s, then 1 s with 16 requests pipelined per connection.
  it("takes wrk's load without a socket error, pipelined too", function()
    start()
    for _, extra in ipairs({ { "-d", "2s" },
                             { "-d", "1s", "-s", "tests/peers/wrk_pipeline.lua" } }) do
      local argv = { "wrk", "-t", "2", "-c", "20", "--timeout", "2s", table.unpack(extra) }
      argv[#argv + 1] = url("/")
      local out, status, c = run(argv, 10)
      assert.are.equal(0, status, c:stderr())
      local requests = tonumber(out:match("(%d+) requests in"))
      assert.is_true(requests and requests > 100, out)
      assert.is_nil(out:find("Socket errors"), out)
      assert.is_nil(out:find("Non%-2xx"), out)
    end
  end)
end)

describe("scripts/redis_server.lua", function()
  local port
  local function start()
    port = select(2, start_server("redis_server.lua", "Redis server at:"))
  end

  -- Feed lines to redis-cli (not a terminal: raw replies, one per line).
  local function cli(lines)
    local c = support.start({ "redis-cli", "-p", port }, { stdin = "pipe" })
    c:send(table.concat(lines, "\n") .. "\n")
    c:close_stdin()
    local out = c:rest()
    assert.are.equal(0, c:wait(), c:stderr())
    return out
  end

  it("answers redis-cli for each command", function()
    start()
    local steps = {   -- command, reply as redis-cli prints it (a blank line after errors)
      { "PING", "PONG" }, { "ECHO 'hi there'", "hi there" },
      { "SET k v", "OK" }, { "GET k", "v" }, { "GET missing", "" },
      { "SET k w XX", "OK" }, { "SET k x NX", "" }, { "GET k", "w" },
      { "SET fresh y XX", "" }, { "SET fresh y NX", "OK" },
      { "INCR n", "1" }, { "INCR n", "2" }, { "EXISTS k n missing", "2" },
      { "DEL k", "1" }, { "DEL k", "0" }, { "DEL n fresh missing", "2" },
      { "EXISTS n", "0" }, { "GET n", "" },
      { "SET s abc", "OK" }, { "INCR s", "ERR value is not an integer or out of range\n" },
      { "SET big 9223372036854775807", "OK" },
      { "INCR big", "ERR increment or decrement would overflow\n" },
    }
    local commands, replies = {}, {}
    for i, step in ipairs(steps) do commands[i], replies[i] = step[1], step[2] end
    assert.are.equal(table.concat(replies, "\n") .. "\n", cli(commands))
  end)

  it("keeps time: SET EX then TTL, EXPIRE, PX that runs out", function()
    start()
    local out = cli({ "SET t v EX 100", "TTL t", "TTL nokey", "SET p 7", "TTL p",
      "EXPIRE p 50", "TTL p", "EXPIRE nokey 5", "SET q v PX 300", "PTTL q",
      "INCR p", "TTL p", "SET p 1", "TTL p" })   -- INCR keeps the deadline, SET drops it
    local lines = {}
    for l in out:gmatch("[^\n]*") do lines[#lines + 1] = l end
    assert.are.equal("OK", lines[1])
    assert.is_true(lines[2] == "100" or lines[2] == "99", out)
    assert.are.same({ "-2", "OK", "-1", "1" }, { table.unpack(lines, 3, 6) })
    assert.is_true(lines[7] == "50" or lines[7] == "49", out)
    assert.are.same({ "0", "OK" }, { lines[8], lines[9] })
    local pttl = tonumber(lines[10])
    assert.is_true(pttl > 0 and pttl <= 300, out)
    assert.are.equal("8", lines[11])
    assert.is_true(lines[12] == "50" or lines[12] == "49", out)
    assert.are.same({ "OK", "-1" }, { lines[13], lines[14] })
    socket.sleep(0.35)                              -- this test is about time passing
    assert.are.equal("\n0\n", cli({ "GET q", "EXISTS q" }))
  end)

  it("reports errors in RESP: unknown command, wrong arity, bad syntax", function()
    start()
    local s <close> = support.connect(port)
    assert(s:sendall("*2\r\n$4\r\nFROB\r\n$1\r\nx\r\n*1\r\n$3\r\nGET\r\n"
      .. "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$5\r\nWHATS\r\n"
      .. "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nEX\r\n"
      .. "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nEX\r\n$1\r\n0\r\n"
      .. "*1\r\n$4\r\nQUIT\r\n"))
    assert.are.equal("-ERR unknown command 'FROB', with args beginning with: 'x' \r\n"
      .. "-ERR wrong number of arguments for 'get' command\r\n"
      .. "-ERR syntax error\r\n-ERR syntax error\r\n"
      .. "-ERR invalid expire time in 'set' command\r\n+OK\r\n", support.recv_all(s))
  end)

  it("answers a protocol error in RESP and hangs up", function()
    start()
    local s <close> = support.connect(port)
    assert(s:sendall("PING\r\n*x\r\nPING\r\n"))
    assert.are.equal("+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n", support.recv_all(s))
    local t <close> = support.connect(port)
    assert(t:sendall("*1\r\n+PING\r\n"))
    assert.are.equal("-ERR Protocol error: expected '$', got '+'\r\n", support.recv_all(t))
  end)

  it("answers pipelined RESP and inline commands in order", function()
    start()
    local s <close> = support.connect(port)
    assert(s:sendall("*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n"
      .. "*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nECHO inline\r\nINCR c\r\n*1\r\n$4\r\nQUIT\r\n"))
    assert.are.equal("+PONG\r\n+OK\r\n$4\r\na\r\nb\r\n+PONG\r\n$6\r\ninline\r\n:1\r\n+OK\r\n",
      support.recv_all(s))
  end)

  it("answers pipelined commands without waiting for ACKs (TCP_NODELAY)", function()
    start()
    local t = pipelined_rounds(port, "*1\r\n$4\r\nPING\r\n", 1)
    assert.is_true(t < 1.5, ("50 rounds took %.2f s"):format(t))
  end)

  it("takes redis-cli --pipe", function()
    start()
    local lines = {}
    for i = 1, 500 do lines[#lines + 1] = ("SET key%d %d\r\nINCR key%d\r\n"):format(i, i, i) end
    local c = support.start({ "redis-cli", "-p", port, "--pipe" }, { stdin = "pipe" })
    c:send(table.concat(lines))
    c:close_stdin()
    local out = c:rest()
    assert.are.equal(0, c:wait(), out)
    assert.matches("errors: 0, replies: 1000", out, 1, true)
    assert.are.equal("501\n", cli({ "GET key500" }))
  end)

  it("takes redis-benchmark -t ping,set,get without an error", function()
    start()
    local out, status = run({ "redis-benchmark", "-p", port, "-t", "ping,set,get",
      "-n", "2000", "-q" }, 20)
    assert.are.equal(0, status, out)
    for _, test in ipairs({ "PING_INLINE", "PING_MBULK", "SET", "GET" }) do
      assert.matches(test .. ": [%d.]+ requests per second", out)
    end
    assert.is_nil(out:find("rror"), out)
    assert.is_nil(out:find("WARNING"), out)
  end)
end)

describe("scripts/proxy.lua", function()
  -- A socat echo server (cat behind a TCP listener) and the proxy to it.
  local function start()
    local echo = support.start({ "socat", "-d", "-d", "TCP-LISTEN:0,bind=127.0.0.1,fork", "EXEC:cat" },
      { stdin = "null", stderr = "socket" })
    local target = tonumber(echo:expect("listening on AF=2 127%.0%.0%.1:(%d+)$"))
    local proxy = support.start(script("proxy.lua", "127.0.0.1", "0", "127.0.0.1", target),
      { stdin = "null" })
    local port = tonumber(proxy:expect("^Proxy at: 127%.0%.0%.1:(%d+) %-> 127%.0%.0%.1:"
      .. target .. "$"))
    return proxy, port
  end

  it("relays a large payload both ways intact, half-close included", function()
    local proxy, port = start()
    local chunk = {}
    for i = 1, 8192 do chunk[i] = string.pack("<j", math.random(0)) end
    local payload = table.concat(chunk):rep(64)       -- 4 MiB
    local c <close> = support.connect(port)
    local received
    local ok, err = socket.run(function()
      socket.spawn(function()
        assert(c:sendall(payload))
        assert(c:shutdown(socket.SHUT_WR))            -- only our side ends
      end)
      received = support.recv_all(c)                          -- the echo keeps coming back
    end)
    assert(ok, err)
    assert.are.equal(#payload, #received)
    assert.is_true(payload == received, "payload corrupted")
    proxy:expect("^127%.0%.0%.1:%d+ connected$")
    proxy:expect("^127%.0%.0%.1:%d+ closed$")
  end)

  it("relays a conversation that the server side starts and ends", function()
    local server, target = start_server("server.lua", "Server start at:")
    local proxy = support.start(script("proxy.lua", "127.0.0.1", "0", "127.0.0.1", target),
      { stdin = "null" })
    local port = tonumber(proxy:expect("^Proxy at: 127%.0%.0%.1:(%d+)"))
    local c = support.start({ "nc", "-N", "127.0.0.1", port }, { stdin = "pipe" })
    c:send("through the proxy\n")
    assert.are.equal("server received you message.", c:read(#"server received you message."))
    server:expect("^through the proxy$")
    c:close_stdin()
    assert.are.equal("", c:rest())
    assert.are.equal(0, c:wait())
  end)

  it("adds no Nagle stall to pipelined requests (TCP_NODELAY both ways)", function()
    local _, target = start_server("http_hello.lua", "HTTP server at:")
    local proxy = support.start(script("proxy.lua", "127.0.0.1", "0", "127.0.0.1", target),
      { stdin = "null" })
    local port = tonumber(proxy:expect("^Proxy at: 127%.0%.0%.1:(%d+)"))
    local t = pipelined_rounds(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5)
    assert.is_true(t < 1.5, ("50 rounds took %.2f s"):format(t))
  end)

  it("closes the client when the target refuses", function()
    local gone = assert(socket.socket())
    assert(gone:bind({ "127.0.0.1", 0 }))
    local target = gone:getsockname().port
    gone:close()
    local proxy = support.start(script("proxy.lua", "127.0.0.1", "0", "127.0.0.1", target),
      { stdin = "null" })
    local port = tonumber(proxy:expect("^Proxy at: 127%.0%.0%.1:(%d+)"))
    local c <close> = support.connect(port)
    assert.are.equal("", support.recv_all(c))
    proxy:expect("cannot reach the target: Connection refused$")
  end)
end)

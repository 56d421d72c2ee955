-- tests/scripts_spec.lua: the scripts under scripts/, run end to end as
-- child processes of the test (support.start: output read with a time
-- limit, every child killed and reaped after the test).  Servers are
-- started on port 0 and the test reads the address they print.
local socket = require "socket"
local support = require "tests.support"

local script, port_of = support.script, support.port_of

-- The seed's exchange: send msg, expect the original reply text.
local function exchange(s, msg)
  assert(s:sendall(msg))
  assert.are.equal("server received you message.", s:recv(1024))
end

describe("scripts/server.lua", function()
  local server, port
  -- Start the server (opts: the child's options besides stdin).
  local function launch(opts)
    opts = opts or {}
    opts.stdin = "null"
    server = support.start(script("server.lua", "127.0.0.1", "0"), opts)
  end

  -- Launch it and read the address and the line it prints first.
  local function start(opts)
    launch(opts)
    port = select(2, server:address("Server start at:"))
    assert.are.equal("wait for connection...", server:line())
  end

  it("prints the original lines and answers with the original text", function()
    launch()
    local line = server:line()
    local host, p = line:match("^Server start at: ([%d.]+):(%d+)$")
    assert.are.equal("127.0.0.1", host, line)
    assert.are_not.equal(0, tonumber(p))
    port = tonumber(p)
    assert.are.equal("wait for connection...", server:line())
    local c <close> = support.connect(port)
    assert.are.equal("Connected by  127.0.0.1:" .. port_of(c), server:line())
    exchange(c, "hello luasock")
    assert.are.equal("hello luasock", server:line())
    exchange(c, "second message")
    assert.are.equal("second message", server:line())
  end)

  it("notices a client that leaves and serves the next one", function()
    start()
    local a = support.connect(port)
    assert.are.equal("Connected by  127.0.0.1:" .. port_of(a), server:line())
    exchange(a, "from a")
    assert.are.equal("from a", server:line())
    a:close()
    local b <close> = support.connect(port)
    assert.are.equal("Connected by  127.0.0.1:" .. port_of(b), server:line())
    exchange(b, "from b")
    assert.are.equal("from b", server:line())
  end)

  it("notices a client that resets its connection", function()
    start()
    local a = support.connect(port)
    server:line()
    exchange(a, "x")
    server:line()
    -- SO_LINGER {on, 0 s}: close() sends RST, recv on the server fails
    assert(a:setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, string.pack("ii", 1, 0)))
    a:close()
    local b <close> = support.connect(port)
    assert.are.equal("Connected by  127.0.0.1:" .. port_of(b), server:line())
    exchange(b, "after reset")
  end)

  it("serves two clients at once", function()
    start()
    local a <close> = support.connect(port)
    local b <close> = support.connect(port)
    local seen = { assert(server:line()), assert(server:line()) }
    table.sort(seen)
    local want = { "Connected by  127.0.0.1:" .. port_of(a),
                   "Connected by  127.0.0.1:" .. port_of(b) }
    table.sort(want)
    assert.are.same(want, seen)
    exchange(b, "b first")       -- a is connected and silent
    assert.are.equal("b first", server:line())
    exchange(a, "then a")
    assert.are.equal("then a", server:line())
  end)

  it("serves twenty clients at once, answering the last comer first", function()
    start()
    local clients, want, seen = {}, {}, {}
    for i = 1, 20 do
      clients[i] = support.connect(port)
      want[i] = "Connected by  127.0.0.1:" .. port_of(clients[i])
    end
    for i = 1, 20 do seen[i] = assert(server:line()) end
    table.sort(want)
    table.sort(seen)
    assert.are.same(want, seen)
    for i = 20, 1, -1 do
      exchange(clients[i], "client " .. i)
      assert.are.equal("client " .. i, server:line())
    end
    for i = 1, 20 do clients[i]:close() end
  end)

  -- A server that spins on a departed client (recv keeps returning "")
  -- burns a whole CPU: over 0.4 s that is ~40 clock ticks.  An idle one
  -- uses none; allow a few for a slow (sanitizer) build.
  it("does not spin after a client leaves", function()
    start()
    local a = support.connect(port)
    server:line()
    exchange(a, "bye")
    server:line()
    a:close()
    local t0 = server:cputicks()
    socket.sleep(0.4)                 -- measuring, not synchronising
    local t1 = server:cputicks()
    assert.is_true(t1 - t0 <= 8, ("used %d ticks after the client left"):format(t1 - t0))
    local b <close> = support.connect(port)
    assert.are.equal("Connected by  127.0.0.1:" .. port_of(b), server:line())
    exchange(b, "still served")
    local t2 = server:cputicks()
    socket.sleep(0.4)
    local t3 = server:cputicks()
    assert.is_true(t3 - t2 <= 8, ("used %d ticks while a client was idle"):format(t3 - t2))
  end)

  it("is flushed line by line into a pipe", function()
    -- The child's stdout is a socket elsewhere; here a real pipe (to cat).
    start({ stdout = "pipe" })
    local c <close> = support.connect(port)
    assert.are.equal("Connected by  127.0.0.1:" .. port_of(c), server:line())
    exchange(c, "through a pipe")
    assert.are.equal("through a pipe", server:line())
  end)
end)

describe("scripts/client.lua", function()
  it("prompts, prints each reply and exits 0 at the end of piped input", function()
    local server = support.start(script("server.lua", "127.0.0.1", "0"), { stdin = "null" })
    local _, port = server:address("Server start at:")
    local client = support.start(script("client.lua", "127.0.0.1", port), { stdin = "pipe" })
    assert.are.equal("Please input msg:", client:read(#"Please input msg:"))
    client:send("hello\n")
    assert.are.equal("server received you message.", client:line())
    server:expect("^Connected by  127%.0%.0%.1:%d+$")
    assert.are.equal("hello", server:line())
    client:send("\nworld\n")          -- an empty line is not sent
    client:close_stdin()
    local out = client:rest()
    assert.are.equal("Please input msg:Please input msg:server received you message.\n"
      .. "Please input msg:\n", out)
    assert.are.equal(0, client:wait())
    assert.are.equal("world", server:line())
  end)

  it("talks to server.lua over ::1", function()
    local v6, why = support.has_ipv6()
    if not v6 then print("skipped: " .. why); return end
    local server = support.start(script("server.lua", "::1", "0"), { stdin = "null" })
    local host, port = server:address("Server start at:")
    assert.are.equal("::1", host)
    local client = support.start(script("client.lua", "::1", port), { stdin = "pipe" })
    client:send("six\n")
    client:close_stdin()
    assert.are.equal("Please input msg:server received you message.\nPlease input msg:\n",
      client:rest())
    assert.are.equal(0, client:wait())
    server:expect("^Connected by  %[::1%]:%d+$")
    assert.are.equal("six", server:line())
  end)

  it("fails with status 1 when the server hangs up", function()
    local l <close> = assert(socket.create_server({ "127.0.0.1", 0 }))
    l:settimeout(2)
    local client = support.start(script("client.lua", "127.0.0.1", port_of(l)), { stdin = "pipe" })
    local conn <close> = assert(l:accept())
    conn:settimeout(2)
    client:send("anyone?\n")
    assert.are.equal("anyone?", conn:recv(100))
    conn:close()                      -- no answer: the server is gone
    client:close_stdin()              -- (cat, feeding the pipe, holds our connection)
    assert.are.equal("Please input msg:", client:rest())
    assert.are.equal(1, client:wait())
    assert.matches("server closed the connection", client:stderr(), 1, true)
  end)

  -- Against a closed port the client died with "client.lua:13: Connection
  -- refused" and a traceback, not saying which address refused.
  it("says which address refused and exits 1, without a traceback", function()
    local s = assert(socket.socket())
    assert(s:bind({ "127.0.0.1", 0 }))
    local port = port_of(s)
    s:close()                         -- a port nobody listens on
    local client = support.start(script("client.lua", "127.0.0.1", port), { stdin = "null" })
    assert.are.equal("", client:rest())
    assert.are.equal(1, client:wait())
    assert.are.equal("client.lua: cannot connect to 127.0.0.1:" .. port .. ": Connection refused\n",
                     client:stderr())
  end)
end)

describe("scripts/udp_server.lua and udp_client.lua", function()
  it("echo datagrams", function()
    local server = support.start(script("udp_server.lua", "127.0.0.1", "0"), { stdin = "null" })
    local _, port = server:address("UDP server at:")
    local client = support.start(script("udp_client.lua", "127.0.0.1", port), { stdin = "pipe" })
    client:send("ping one\n")
    assert.are.equal("ping one", client:line())
    local from = server:expect("^(127%.0%.0%.1:%d+): ping one$")
    client:send("two\n")
    client:close_stdin()
    assert.are.equal("two\n", client:rest())
    assert.are.equal(0, client:wait())
    assert.are.equal(from .. ": two", server:line())
  end)

  -- A datagram ending in a newline (nc -u sends one per line) was logged
  -- with a second newline: an empty line after each datagram.
  it("logs one line per datagram, also one ending in a newline", function()
    local server = support.start(script("udp_server.lua", "127.0.0.1", "0"), { stdin = "null" })
    local _, port = server:address("UDP server at:")
    local c <close> = assert(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    c:settimeout(2)
    assert(c:connect({ "127.0.0.1", port }))
    local me = tostring(c:getsockname())
    for _, line in ipairs({ "from nc\n", "crlf\r\n", "no newline" }) do
      assert(c:send(line))
      assert.are.equal(line, c:recv(100))   -- echoed unchanged
    end
    assert.are.equal(me .. ": from nc", server:line())
    assert.are.equal(me .. ": crlf", server:line())
    assert.are.equal(me .. ": no newline", server:line())
  end)

  it("client reports an answer that does not come within 2 s", function()
    local mute <close> = assert(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    assert(mute:bind({ "127.0.0.1", 0 }))   -- receives, never answers
    mute:settimeout(2)
    local client = support.start(script("udp_client.lua", "127.0.0.1", port_of(mute)),
      { stdin = "pipe" })
    client:send("hello?\n")
    assert.are.equal("hello?", (mute:recvfrom(100)))
    client:close_stdin()
    assert.are.equal("no answer: timeout\n", client:rest(5))
    assert.are.equal(0, client:wait())
  end)

  it("client reports that nobody listens", function()
    local s = assert(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    assert(s:bind({ "127.0.0.1", 0 }))
    local port = port_of(s)
    s:close()
    local client = support.start(script("udp_client.lua", "127.0.0.1", port), { stdin = "pipe" })
    client:send("anyone?\n")
    client:close_stdin()
    assert.are.equal("no answer: Connection refused\n", client:rest())
    assert.are.equal(0, client:wait())
  end)
end)

describe("scripts/unix_echo.lua", function()
  local function echo_through(path)
    local server = support.start(script("unix_echo.lua", "server", path), { stdin = "null" })
    assert.are.equal("Unix echo server at: " .. path, server:line())
    local client = support.start(script("unix_echo.lua", "client", path), { stdin = "pipe" })
    client:send("over a unix socket\n")
    assert.are.equal("over a unix socket", client:line())
    client:send("second\n")
    client:close_stdin()
    assert.are.equal("second\n", client:rest())
    assert.are.equal(0, client:wait())
  end

  it("echoes lines over a path", function()
    local path = support.temp_path("echo.sock")
    echo_through(path)
  end)

  it("echoes lines in the abstract namespace", function()
    echo_through("@" .. support.abstract_name("echo"):sub(2))
  end)

  it("replaces a stale socket file, never a live one", function()
    local path = support.temp_path("echo.sock")
    local stale = assert(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    assert(stale:bind(path))
    stale:close()                     -- the file stays, nobody listens
    echo_through(path)
    local second = support.start(script("unix_echo.lua", "server", path), { stdin = "null" })
    assert.are.equal("", second:rest())
    assert.are.equal(1, second:wait())
    assert.matches("Address already in use", second:stderr())
  end)

  it("prints its usage when the mode is wrong", function()
    local c = support.start(script("unix_echo.lua", "sideways", "/tmp/x"), { stdin = "null" })
    assert.are.equal("", c:rest())
    assert.are.equal(2, c:wait())
    assert.matches("usage: unix_echo.lua server|client PATH", c:stderr(), 1, true)
  end)
end)

describe("scripts/ping.lua", function()
  local function ping(host)
    local c = support.start(script("ping.lua", host, "3", "0.05"), { stdin = "null" })
    local out = c:rest()
    local status = c:wait()
    if status == 2 and c:stderr():find("Operation not permitted") then
      print("skipped: SOCK_RAW not permitted here: " .. c:stderr())
      return
    end
    assert.are.equal(0, status, c:stderr())
    local n = 0
    for seq, ms in out:gmatch("64 bytes from " .. host:gsub("%p", "%%%0")
                              .. ": icmp_seq=(%d)[^\n]* time=([%d.]+) ms\n") do
      n = n + 1
      assert.are.equal(n, tonumber(seq))
      assert.is_true(tonumber(ms) < 1000)
    end
    assert.are.equal(3, n, out)
    assert.matches("3 packets transmitted, 3 received, 0% packet loss", out, 1, true)
    return out
  end

  it("pings 127.0.0.1 with a checksum computed in Lua", function()
    local out = ping("127.0.0.1")
    if out then assert.matches("icmp_seq=1 ttl=64 time=", out, 1, true) end
  end)

  it("pings ::1", function()
    local v6, why = support.has_ipv6()
    if not v6 then print("skipped: " .. why); return end
    ping("::1")
  end)

  -- In a network namespace of the test's own: first with its loopback
  -- down (sending fails), then up but ignoring echo requests (no reply).
  local function ping_in_netns(setup)
    local sh = setup .. ' exec "$0" scripts/ping.lua 127.0.0.1 1 0'
    local c = support.start({ "unshare", "-n", "sh", "-c", sh, support.LUASOCK }, { stdin = "null" })
    local out, status = c:rest(5), c:wait(5)   -- a reply is awaited for 1 s
    if status ~= 1 and c:stderr():find("unshare") then
      print("skipped: cannot make a network namespace: " .. c:stderr())
      return nil
    end
    assert.are.equal(1, status, c:stderr())
    return out
  end

  it("reports a failed send and exits 1", function()
    local out = ping_in_netns("")
    if out then
      assert.are.equal("PING 127.0.0.1: 56 data bytes\n"
        .. "no reply for icmp_seq=1: Network is unreachable\n"
        .. "--- 127.0.0.1 ping statistics ---\n"
        .. "1 packets transmitted, 0 received, 100% packet loss\n", out)
    end
  end)

  it("reports a reply that does not come within 1 s", function()
    local out = ping_in_netns("ip link set lo up && sysctl -qw net.ipv4.icmp_echo_ignore_all=1 &&")
    if out then
      assert.matches("no reply for icmp_seq=1: timeout\n", out, 1, true)
      assert.matches("1 packets transmitted, 0 received, 100% packet loss", out, 1, true)
    end
  end)

  -- Without root, ping.lua said only "ping: socket: Operation not
  -- permitted (errno 1)", not what it lacks.  Run here without
  -- CAP_NET_RAW: as root, setpriv drops it from the bounding and the
  -- inheritable sets, so the exec'd program does not get it back.
  it("says it needs root or CAP_NET_RAW when it cannot open a raw socket", function()
    local argv = script("ping.lua", "127.0.0.1", "1", "0")
    if support.run({ "id", "-u" }).out == "0\n" then
      argv = { "setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", table.unpack(argv) }
    end
    local c = support.start(argv, { stdin = "null" })
    assert.are.equal("", c:rest())
    assert.are.equal(2, c:wait())
    assert.are.equal("ping: a raw socket needs root or CAP_NET_RAW "
                     .. "(socket: Operation not permitted, errno 1)\n", c:stderr())
  end)

  it("refuses any host but the literal 127.0.0.1 or ::1", function()
    -- a name, not a literal: refused before any packet is sent
    local c = support.start(script("ping.lua", "localhost"), { stdin = "null" })
    assert.are.equal("", c:rest())
    assert.are.equal(1, c:wait())
    assert.matches("pings 127.0.0.1 or ::1 only", c:stderr(), 1, true)
  end)
end)

describe("scripts/portcheck.lua", function()
  it("reports a listening port open and a just closed one closed", function()
    local open <close> = assert(socket.socket())
    assert(open:bind({ "127.0.0.1", 0 }))
    assert(open:listen())
    local gone = assert(socket.socket())
    assert(gone:bind({ "127.0.0.1", 0 }))
    local closed_port = port_of(gone)
    gone:close()
    local a = support.start(script("portcheck.lua", "127.0.0.1", port_of(open), port_of(open), "1"),
      { stdin = "null" })
    assert.are.equal(port_of(open) .. " open\n1 open, 0 closed, 0 filtered\n", a:rest())
    assert.are.equal(0, a:wait())
    local b = support.start(script("portcheck.lua", "127.0.0.1", closed_port, closed_port, "1"),
      { stdin = "null" })
    assert.are.equal(closed_port .. " closed\n0 open, 1 closed, 0 filtered\n", b:rest())
    assert.are.equal(0, b:wait())
  end)

  -- A listener with backlog 0 and one connection waiting in its accept
  -- queue drops further SYNs: the connect times out, as behind a firewall.
  it("reports a port that does not answer as filtered", function()
    local full <close> = assert(socket.socket())
    assert(full:bind({ "127.0.0.1", 0 }))
    assert(full:listen(0))
    local waiting <close> = assert(socket.socket())
    waiting:settimeout(2)
    assert(waiting:connect(full:getsockname()))
    local port = port_of(full)
    local c = support.start(script("portcheck.lua", "127.0.0.1", port, port, "0.2"),
      { stdin = "null" })
    assert.are.equal(port .. " filtered (ETIMEDOUT)\n0 open, 0 closed, 1 filtered\n", c:rest())
    assert.are.equal(0, c:wait())
  end)
end)

describe("the servers under Ctrl-C", function()
  -- SIGINT ends a script as in lua5.4: "interrupted!", status 1, whether
  -- it waits in the event loop (tasks) or in a blocking call (which of
  -- the two the signal meets is a race: the traceback is not checked).
  for _, case in ipairs({ { "server.lua", "Server start at:" },
                          { "udp_server.lua", "UDP server at:" } }) do
    it(case[1] .. " stops with 'interrupted!' and status 1", function()
      local c = support.start(script(case[1], "127.0.0.1", "0"), { stdin = "null" })
      c:address(case[2])
      os.execute("kill -INT " .. c.pid)
      c:rest()
      assert.are.equal(1, c:wait())
      assert.matches("interrupted!", c:stderr(), 1, true)
    end)
  end
end)

-- tests/interop_spec.lua: the Lua scripts talk to peers nobody on this
-- project wrote: Python 3's socket module (a client and a server written
-- like the seed's, tests/peers/seed_*.py), OpenBSD netcat and socat.
-- Every peer runs as a child of the test (support.start).
local socket = require "socket"
local support = require "tests.support"

local PYTHON = support.PYTHON
local REPLY = "server received you message."
local PROMPT = "Please input msg:"

local script, port_of = support.script, support.port_of

-- scripts/server.lua on host (default 127.0.0.1), port 0; returns the
-- child and the port it printed.
local function lua_server(host)
  local server = support.start(script("server.lua", host or "127.0.0.1", "0"), { stdin = "null" })
  local _, port = server:address("Server start at:")
  assert.are.equal("wait for connection...", server:line())
  return server, port
end

describe("Python 3 and the Lua scripts", function()
  it("a Python client written like the seed's talks to server.lua", function()
    local server, port = lua_server()
    local client = support.start({ PYTHON, "-u", "tests/peers/seed_client.py", "127.0.0.1", port },
      { stdin = "pipe" })
    client:send("hello from python\n")
    assert.are.equal(PROMPT .. REPLY, client:line())
    server:expect("^Connected by  127%.0%.0%.1:%d+$")
    assert.are.equal("hello from python", server:line())
    client:send("again\n")
    client:close_stdin()
    assert.are.equal(PROMPT .. REPLY .. "\n" .. PROMPT, client:rest())
    assert.are.equal(0, client:wait(), client:stderr())
    assert.are.equal("again", server:line())
  end)

  it("two Python clients talk to server.lua at once", function()
    local server, port = lua_server()
    local a = support.start({ PYTHON, "-u", "tests/peers/seed_client.py", "127.0.0.1", port },
      { stdin = "pipe" })
    local b = support.start({ PYTHON, "-u", "tests/peers/seed_client.py", "127.0.0.1", port },
      { stdin = "pipe" })
    server:expect("^Connected by  127%.0%.0%.1:%d+$")
    server:expect("^Connected by  127%.0%.0%.1:%d+$")
    b:send("b speaks first\n")            -- a is connected and silent
    assert.are.equal(PROMPT .. REPLY, b:line())
    assert.are.equal("b speaks first", server:line())
    a:send("then a\n")
    assert.are.equal(PROMPT .. REPLY, a:line())
    assert.are.equal("then a", server:line())
  end)

  it("client.lua talks to a Python server written like the seed's", function()
    local server = support.start({ PYTHON, "-u", "tests/peers/seed_server.py", "127.0.0.1", "0" },
      { stdin = "null" })
    local _, port = server:address("Server start at:")
    assert.are.equal("wait for connection...", server:line())
    local client = support.start(script("client.lua", "127.0.0.1", port), { stdin = "pipe" })
    client:send("hello from lua\n")
    assert.are.equal(PROMPT .. REPLY, client:line())
    server:expect("^Connected by  127%.0%.0%.1:%d+$")
    assert.are.equal("hello from lua", server:line())
    client:close_stdin()
    assert.are.equal(PROMPT .. "\n", client:rest())
    assert.are.equal(0, client:wait(), client:stderr())
  end)
end)

describe("netcat and socat with server.lua", function()
  -- peer_argv(port) gives the command line of the peer.
  local function talk(peer_argv)
    local server, port = lua_server()
    local peer = support.start(peer_argv(port), { stdin = "pipe" })
    server:expect("^Connected by  127%.0%.0%.1:%d+$")
    peer:send("one line\n")
    assert.are.equal(REPLY, peer:read(#REPLY))
    assert.are.equal("one line", server:line())
    peer:send("two\n")
    assert.are.equal(REPLY, peer:read(#REPLY))
    assert.are.equal("two", server:line())
    peer:close_stdin()                     -- the peer half-closes; the server closes
    assert.are.equal("", peer:rest())
    assert.are.equal(0, peer:wait(), peer:stderr())
    local next_client <close> = support.connect(port)
    server:expect("^Connected by  127%.0%.0%.1:" .. port_of(next_client) .. "$")
  end

  it("nc sends lines and reads the replies", function()
    talk(function(port) return { "nc", "-N", "127.0.0.1", port } end)
  end)

  it("socat sends lines and reads the replies", function()
    talk(function(port) return { "socat", "-", "TCP:127.0.0.1:" .. port } end)
  end)

  it("nc talks to server.lua over ::1", function()
    local v6, why = support.has_ipv6()
    if not v6 then print("skipped: " .. why); return end
    local server, port = lua_server("::1")
    local peer = support.start({ "nc", "-N", "::1", port }, { stdin = "pipe" })
    server:expect("^Connected by  %[::1%]:%d+$")
    peer:send("over ipv6\n")
    assert.are.equal(REPLY, peer:read(#REPLY))
    assert.are.equal("over ipv6", server:line())
  end)
end)

describe("client.lua with netcat and socat servers", function()
  it("talks to nc -l", function()
    local nc = support.start({ "nc", "-lnv", "127.0.0.1", "0" }, { stderr = "socket" })
    local port = tonumber(nc:expect("^Listening on 127%.0%.0%.1 (%d+)$"))
    local client = support.start(script("client.lua", "127.0.0.1", port), { stdin = "pipe" })
    nc:expect("^Connection received on 127%.0%.0%.1 %d+$")
    assert.are.equal(PROMPT, client:read(#PROMPT))
    client:send("hello nc\n")
    assert.are.equal("hello nc", nc:read(#"hello nc"))
    nc:send("answer from nc")
    assert.are.equal("answer from nc", client:line())
    client:close_stdin()
    assert.are.equal(PROMPT .. "\n", client:rest())
    assert.are.equal(0, client:wait(), client:stderr())
  end)

  it("talks to a socat echo server", function()
    local echo = support.start({ "socat", "-d", "-d", "TCP-LISTEN:0,bind=127.0.0.1", "EXEC:cat" },
      { stdin = "null", stderr = "socket" })
    local port = tonumber(echo:expect("listening on AF=2 127%.0%.0%.1:(%d+)$"))
    local client = support.start(script("client.lua", "127.0.0.1", port), { stdin = "pipe" })
    client:send("echo me\n")
    assert.are.equal(PROMPT .. "echo me", client:line())
    client:send("and me\n")
    client:close_stdin()
    assert.are.equal(PROMPT .. "and me\n" .. PROMPT .. "\n", client:rest())
    assert.are.equal(0, client:wait(), client:stderr())
  end)
end)

describe("netcat and socat with the Lua echo servers", function()
  it("socat and nc -U talk to unix_echo.lua", function()
    local path = support.temp_path("echo.sock")
    local server = support.start(script("unix_echo.lua", "server", path), { stdin = "null" })
    assert.are.equal("Unix echo server at: " .. path, server:line())
    local a = support.start({ "socat", "-", "UNIX-CONNECT:" .. path }, { stdin = "pipe" })
    local b = support.start({ "nc", "-N", "-U", path }, { stdin = "pipe" })
    a:send("from socat\n")
    b:send("from nc\n")
    assert.are.equal("from nc", b:line())
    assert.are.equal("from socat", a:line())
    a:close_stdin()
    b:close_stdin()
    assert.are.equal("", a:rest())
    assert.are.equal("", b:rest())
    assert.are.equal(0, a:wait())
    assert.are.equal(0, b:wait())
  end)

  it("nc -u and socat UDP talk to udp_server.lua", function()
    local server = support.start(script("udp_server.lua", "127.0.0.1", "0"), { stdin = "null" })
    local _, port = server:address("UDP server at:")
    local nc = support.start({ "nc", "-u", "127.0.0.1", port }, { stdin = "pipe" })
    nc:send("datagram from nc\n")
    assert.are.equal("datagram from nc", nc:line())
    server:expect("^127%.0%.0%.1:%d+: datagram from nc$")
    local so = support.start({ "socat", "-", "UDP:127.0.0.1:" .. port }, { stdin = "pipe" })
    so:send("datagram from socat\n")
    assert.are.equal("datagram from socat", so:line())
  end)

  it("udp_client.lua talks to nc -u -l", function()
    local nc = support.start({ "nc", "-ulnv", "127.0.0.1", "0" }, { stderr = "socket" })
    local port = tonumber(nc:expect("^Bound on 127%.0%.0%.1 (%d+)$"))
    local client = support.start(script("udp_client.lua", "127.0.0.1", port), { stdin = "pipe" })
    client:send("to nc")
    client:send("\n")
    nc:expect("^Connection received on 127%.0%.0%.1 %d+$")
    assert.are.equal("to nc", nc:read(#"to nc"))
    nc:send("from nc")                     -- nc sends it back as one datagram
    assert.are.equal("from nc", client:line())
    client:close_stdin()
    assert.are.equal("", client:rest())
    assert.are.equal(0, client:wait())
  end)
end)

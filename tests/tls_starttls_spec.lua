-- tests/tls_starttls_spec.lua: makefile streams over TLS sockets, and
-- STARTTLS through streams: scripts/starttls.lua (a line protocol that
-- upgrades, client and server), a client that pipelines its STARTTLS
-- with the handshake (the server's plain stream reads both), and a
-- stream's bytes that must never come back to the script as if TLS had
-- carried them.
local socket = require "socket"
local support = require "tests.support"
local tls = require "tests.tls_support"

local script = support.script

local function run(fn, limit) support.run_ok(limit or 8, fn) end

-- A TLS server in a task: handler(conn) for one connection.  Its port.
local function serve(handler)
  local srv = assert(socket.create_server({ "127.0.0.1", 0 }, { ssl = tls.server_ctx() }))
  srv:settimeout(20)
  socket.spawn(function()
    local conn = assert(srv:accept())
    srv:close()
    conn:settimeout(20)
    handler(conn)
    conn:close()
  end)
  return srv:getsockname().port
end

local function client(port)
  local s = assert(socket.create_connection({ "127.0.0.1", port }, 20))
  return assert(tls.client_ctx():wrap_socket(s, { server_hostname = "localhost" }))
end

describe("makefile on a TLS socket", function()
  it("reads and writes lines through TLS", function()
    local port = serve(function(conn)
      local f = conn:makefile("rw")
      for line in f:lines() do f:write(line:upper(), "\n"):flush() end
      f:close()
    end)
    run(function()
      local t = client(port)
      local f = t:makefile("rw")
      f:write("one\ntwo\n"):flush()
      assert.are.equal("ONE", f:read("l"))
      assert.are.equal("TWO", f:read("l"))
      f:close()
      t:close()
    end)
  end)

  it("carries 64 MiB intact", function()
    local block = {}
    for i = 0, 1023 do block[#block + 1] = string.pack(">I4", i * 2654435761 % 4294967296) end
    local data = table.concat(block):rep(16 * 1024)
    local received
    local port = serve(function(conn)
      conn:settimeout(60)   -- one read of all 64 MiB: under ASan and load it passed 20 s
      local f = conn:makefile("rw")
      received = f:read(#data)
      f:write("ok"):flush()
      f:close()
    end)
    run(function()
      local t = client(port)
      t:settimeout(60)
      local f = t:makefile("rw")
      assert(f:write(data))
      assert(f:flush())
      assert.are.equal("ok", f:read(2))
      f:close()
      t:close()
    end, 60)
    assert.is_true(received == data)
  end)

  it("returns TLS failures with their code", function()
    local port = serve(function(conn)
      assert(conn:sendall("partial line"))
      conn:shutdown(socket.SHUT_RDWR)       -- no close_notify
    end)
    run(function()
      local s = assert(socket.create_connection({ "127.0.0.1", port }, 20))
      local t = assert(tls.client_ctx():wrap_socket(s,
        { server_hostname = "localhost", suppress_ragged_eofs = false }))
      local f = t:makefile()
      assert.are.same({ nil, "EOF occurred in violation of protocol", "UNEXPECTED_EOF" },
                      { f:read("l") })
      f:close()
      t:close()
    end)
  end)
end)

describe("scripts/starttls.lua", function()
  it("upgrades a line protocol, client and server both scripts", function()
    local c = tls.certs()
    local srv = support.start(script("starttls.lua", "server", c.server, c.server_key,
                                     "127.0.0.1", "0"), { stdin = "null" })
    local _, port = srv:address("STARTTLS server at:")
    local res = support.run(script("starttls.lua", "client", "localhost", port, c.ca),
                            { limit = 20 })
    assert.are.equal(0, res.code, res.err)
    assert.are.equal("220 ready\n250 hello\n220 go ahead\n250 hello over TLSv1.3\n221 bye\n", res.out)
  end)

  it("serves a client that sends HELLO and STARTTLS in one write", function()
    -- the server's plain stream reads both commands at once; the TLS
    -- handshake then starts on a clean stream (tls_spec covers a
    -- ClientHello read ahead with the command)
    local c = tls.certs()
    local srv = support.start(script("starttls.lua", "server", c.server, c.server_key,
                                     "127.0.0.1", "0"), { stdin = "null" })
    local _, port = srv:address("STARTTLS server at:")
    local s <close> = support.connect(port)
    local f = s:makefile("rw")
    assert.are.equal("220 ready\r", f:read("l"))
    f:write("HELLO\r\nSTARTTLS\r\n"):flush()   -- two commands in one write
    assert.are.equal("250 hello\r", f:read("l"))
    assert.are.equal("220 go ahead\r", f:read("l"))
    local t = assert(tls.client_ctx():wrap_socket(s, { server_hostname = "localhost" }))
    assert(t:sendall("HELLO\r\n"))
    assert.are.equal("250 hello over TLSv1.3\r\n", t:recv(100))
    t:close()
  end)
end)


-- tests/tls_interop_spec.lua: TLS with peers nobody on this project
-- wrote: openssl s_server and s_client (TLS 1.2 and 1.3, ALPN, SNI),
-- curl --cacert against a luasock HTTPS server, and Python's ssl module
-- as client and as server (mutual TLS too).  The luasock end runs in a
-- task or outside one while the peer runs as a child (support.start).
local socket = require "socket"
local ssl = require "socket.ssl"
local support = require "tests.support"
local tls = require "tests.tls_support"

local PEER = "tests/peers/tls_peer.py"

-- openssl s_server on 127.0.0.1 with the test certificate, echoing each
-- line reversed (-rev); extra arguments appended.  Returns its port.
local function s_server(...)
  local c = tls.certs()
  local srv = support.start({ "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", c.server,
                              "-key", c.server_key, "-rev", ... }, { stdin = "null" })
  local _, port = srv:address("ACCEPT")
  return port
end

-- Connect to port and shake hands as server_hostname host (default
-- localhost) with the client context cctx (default: trusting the CA).
local function connect(port, cctx, host)
  local s = assert(socket.create_connection({ "127.0.0.1", port }, 4))
  return assert((cctx or tls.client_ctx()):wrap_socket(s, { server_hostname = host or "localhost" }))
end

-- Send line and read the reply line (the peers echo lines).
local function ask(t, line)
  assert(t:sendall(line .. "\n"))
  local got = ""
  repeat
    local data = assert(t:recv(100))
    assert(data ~= "", "the peer closed")
    got = got .. data
  until got:find("\n")
  return got
end

-- A luasock TLS server in a task (context sctx) echoing lines for one
-- connection; the accepted socket is given to inspect(conn) after its
-- handshake if set.  Returns its port.
local function lua_server(sctx, inspect)
  local srv = assert(socket.create_server({ "127.0.0.1", 0 }, { ssl = sctx or tls.server_ctx() }))
  srv:settimeout(4)
  socket.spawn(function()
    local conn = assert(srv:accept())
    srv:close()
    conn:settimeout(4)
    assert(conn:do_handshake())
    if inspect then inspect(conn) end
    while true do
      local data = conn:recv(100)
      if not data or data == "" then break end
      assert(conn:sendall(data))
    end
    conn:close()
  end)
  return srv:getsockname().port
end

describe("luasock's client with openssl s_server", function()
  it("speaks TLS 1.3", function()
    local t = connect(s_server("-tls1_3"))
    assert.are.equal("TLSv1.3", t:version())
    assert.are.equal("olleh\n", ask(t, "hello"))
    t:close()
  end)

  it("speaks TLS 1.2", function()
    local t = connect(s_server("-tls1_2"))
    assert.are.equal("TLSv1.2", t:version())
    local _, proto = t:cipher()
    assert.are.equal("TLSv1.2", proto)
    assert.are.equal("olleh\n", ask(t, "hello"))
    t:close()
  end)

  it("refuses TLS 1.2 when its minimum is TLS 1.3", function()
    local cctx = tls.client_ctx()
    cctx.minimum_version = ssl.TLSVersion.TLSv1_3
    local s = assert(socket.create_connection({ "127.0.0.1", s_server("-tls1_2") }, 4))
    local t, _, code = cctx:wrap_socket(s, { server_hostname = "localhost" })
    assert.is_nil(t)
    assert.are.equal("TLSV1_ALERT_PROTOCOL_VERSION", code)
  end)

  it("negotiates ALPN h2,http/1.1", function()
    local cctx = tls.client_ctx()
    assert(cctx:set_alpn_protocols({ "h2", "http/1.1" }))
    local t = connect(s_server("-alpn", "http/1.1"), cctx)
    assert.are.equal("http/1.1", t:selected_alpn_protocol())
    t:close()
  end)

  it("asks for a name with SNI and gets that name's certificate", function()
    local c = tls.certs()
    local port = s_server("-servername", "alt.localhost", "-cert2", c.alt, "-key2", c.alt_key)
    local t = connect(port, nil, "alt.localhost")
    assert.are.equal("alt.localhost", t:getpeercert().subject.commonName)
    assert.are.equal("olleh\n", ask(t, "hello"))
    t:close()
  end)

  it("rejects s_server's self-signed certificate unless told CERT_NONE", function()
    local c = tls.certs()
    local function start()
      local srv = support.start({ "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
                                  c.selfsigned, "-key", c.selfsigned_key, "-rev" }, { stdin = "null" })
      local _, port = srv:address("ACCEPT")
      return assert(socket.create_connection({ "127.0.0.1", port }, 4))
    end
    local t, _, code = tls.client_ctx():wrap_socket(start(), { server_hostname = "localhost" })
    assert.is_nil(t)
    assert.are.equal("X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT", code)
    local cctx = ssl.create_default_context()
    cctx.check_hostname = false
    cctx.verify_mode = ssl.CERT_NONE
    t = assert(cctx:wrap_socket(start(), { server_hostname = "localhost" }))
    assert.are.equal("olleh\n", ask(t, "hello"))
    t:close()
  end)
end)

describe("luasock's server with openssl s_client", function()
  -- s_client verifying the test CA and the name localhost, extra
  -- arguments appended; its stdin is the test's pipe.
  local function s_client(port, ...)
    local c = tls.certs()
    return support.start({ "openssl", "s_client", "-connect", "127.0.0.1:" .. port, "-CAfile", c.ca,
                           "-verify_return_error", "-verify_hostname", "localhost", "-quiet",
                           "-no_ign_eof", ... }, { stdin = "pipe" })
  end

  for _, version in ipairs { "1_2", "1_3" } do
    it("speaks TLS " .. version:gsub("_", "."), function()
      local seen
      local port = lua_server(nil, function(conn) seen = conn:version() end)
      local cli = s_client(port, "-tls" .. version)
      cli:send("ping\n")
      assert.are.equal("ping", cli:line(4))
      cli:close_stdin()
      cli:wait(4)
      assert.are.equal("TLSv" .. version:gsub("_", "."), seen)
    end)
  end

  it("refuses the renegotiation s_client asks for with R (TLS 1.2)", function()
    local srv = assert(socket.create_server({ "127.0.0.1", 0 }, { ssl = tls.server_ctx() }))
    srv:settimeout(10)
    local res
    socket.spawn(function()
      local conn = assert(srv:accept())
      srv:close()
      conn:settimeout(10)
      res = { conn:recv(100) }
      conn:close()
    end)
    local cli = s_client(srv:getsockname().port, "-tls1_2")
    cli:send("R\n")                      -- s_client's command: renegotiate
    cli:wait(10)
    assert.truthy(cli:stderr():find("no renegotiation", 1, true), cli:stderr())
    socket.run()
    assert.is_nil(res[1])
    assert.are.equal("string", type(res[3]))   -- the handshake alert the client sent
  end)

  -- What s_client printed (-msg: each handshake message) over one
  -- exchange with a luasock server using sctx.
  local function transcript(sctx)
    local port = lua_server(sctx)
    local c = tls.certs()
    local cli = support.start({ "openssl", "s_client", "-connect", "127.0.0.1:" .. port,
                                "-CAfile", c.ca, "-verify_return_error", "-tls1_3", "-msg",
                                "-showcerts" }, { stdin = "pipe" })
    cli:send("ping\n")
    local lines = {}
    repeat
      lines[#lines + 1] = assert(cli:line(4))
    until lines[#lines] == "ping"          -- the echo: the tickets came before it
    cli:close_stdin()
    cli:wait(4)
    socket.run()                            -- the server's task ends
    return table.concat(lines, "\n")
  end

  local function count(text, pattern)
    local n = 0
    for _ in text:gmatch(pattern) do n = n + 1 end
    return n
  end

  -- A server context loading CA certificates (as create_default_context
  -- loads the system's) once completed its own chain from that store on
  -- every handshake: with the system's store it read the certificate
  -- directory each time, a sixth of the handshake's CPU.  The chain sent
  -- is the one in the certificate file.
  it("sends the certificate chain as loaded, not completed from its CA store", function()
    local sctx = tls.server_ctx()
    assert(sctx:load_verify_locations(tls.certs().ca))   -- holds server.pem's issuer
    local out = transcript(sctx)
    assert.are.equal(1, count(out, "BEGIN CERTIFICATE"), out)
  end)

  -- Each TLS 1.3 session ticket costs the server about a sixth of a
  -- handshake; num_tickets = 0 (nginx's ssl_session_tickets off) sends none.
  it("sends num_tickets session tickets (2 unless set)", function()
    local sctx = tls.server_ctx()
    assert.are.equal(2, sctx.num_tickets)
    assert.are.equal(2, count(transcript(sctx), "NewSessionTicket"))
    sctx.num_tickets = 0
    assert.are.equal(0, sctx.num_tickets)
    assert.are.equal(0, count(transcript(sctx), "NewSessionTicket"))
  end)

  it("chooses ALPN from the client's list and reads its SNI name", function()
    local sctx = tls.server_ctx()
    assert(sctx:set_alpn_protocols({ "h2", "http/1.1" }))
    local asked
    sctx.sni_callback = function(_, name) asked = name end
    local chosen
    local port = lua_server(sctx, function(conn) chosen = conn:selected_alpn_protocol() end)
    local cli = s_client(port, "-alpn", "http/1.1,h2", "-servername", "localhost")
    cli:send("ping\n")
    assert.are.equal("ping", cli:line(4))
    cli:close_stdin()
    cli:wait(4)
    assert.are.equal("h2", chosen)
    assert.are.equal("localhost", asked)
  end)
end)

describe("curl", function()
  it("fetches from a luasock HTTPS server with --cacert", function()
    local srv = assert(socket.create_server({ "127.0.0.1", 0 }, { ssl = tls.server_ctx() }))
    srv:settimeout(4)
    local port = srv:getsockname().port
    socket.spawn(function()
      local conn = assert(srv:accept())
      srv:close()
      conn:settimeout(4)
      local req = ""
      repeat req = req .. assert(conn:recv(1000)) until req:find("\r\n\r\n")
      assert(conn:sendall("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"))
      conn:close()
    end)
    local cli = support.start({ "curl", "-sS", "--cacert", tls.certs().ca,
                                "https://localhost:" .. port .. "/" }, { stdin = "null" })
    assert.are.equal("hello\n", cli:rest(4))
    assert.are.equal(0, cli:wait(4), cli:stderr())
  end)
end)

describe("Python's ssl module", function()
  it("as a client, talks to a luasock server", function()
    local port = lua_server()
    local cli = support.start({ support.PYTHON, PEER, "client", port, tls.certs().ca },
                              { stdin = "null" })
    assert.are.equal("reply first line", cli:line(4))
    assert.are.equal("reply second line", cli:line(4))
    assert.are.equal("version TLSv1.3", cli:line(4))
    assert.are.equal("server localhost", cli:line(4))
    assert.are.equal(0, cli:wait(4), cli:stderr())
  end)

  it("as a server asking a client certificate, talks to a luasock client", function()
    local c = tls.certs()
    local srv = support.start({ support.PYTHON, PEER, "server", c.server, c.server_key, c.ca },
                              { stdin = "null" })
    local _, port = srv:address("listening on")
    local t = connect(port, tls.client_ctx(true))
    assert.are.equal("version TLSv1.3", srv:line(4))
    assert.are.equal("hello\n", ask(t, "hello"))
    assert.are.equal("client luasock client", srv:line(4))
    assert.are.equal("again\n", ask(t, "again"))
    local plain = assert(t:unwrap())   -- Python unwraps too
    assert.are.equal("done", srv:line(4))
    plain:close()
    assert.are.equal(0, srv:wait(4), srv:stderr())
  end)
end)

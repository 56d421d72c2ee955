-- tests/tls_spec.lua: TLS sockets between two luasock ends: wrap_socket,
-- create_connection and create_server with ssl, the data calls and their
-- conventions, what the handshake tells (certificate, cipher, version,
-- ALPN, SNI), secure defaults and the failure codes, mutual TLS,
-- timeouts, a server's handshake deadline, unwrap.  Servers run in tasks;
-- clients in tasks too, or outside any task (the loop turns meanwhile).
local socket = require "socket"
local support = require "tests.support"
local ssl = require "socket.ssl"
local tls = require "tests.tls_support"
local E = socket.errno

local LIMIT = 8   -- seconds any socket.run of this spec may take

local function run(fn) return support.run_ok(LIMIT, fn) end

-- A TLS listening socket on 127.0.0.1 with context sctx; a task accepts
-- `count` connections (default 1) and runs handler(conn) for each in its
-- own task, closing conn afterwards.  Returns the listener and its port.
local function serve(sctx, handler, count)
  local srv = assert(socket.create_server({ "127.0.0.1", 0 }, { ssl = sctx }))
  srv:settimeout(4)
  local port = srv:getsockname().port
  socket.spawn(function()
    for _ = 1, count or 1 do
      local conn = assert(srv:accept())
      conn:settimeout(4)
      socket.spawn(function()
        handler(conn)
        conn:close()
      end)
    end
    srv:close()
  end)
  return srv, port
end

-- An echo handler: sends back what it reads until the end of the stream
-- or an error; records the error in errs if given.
local function echo(errs)
  return function(conn)
    while true do
      local data, msg, code = conn:recv(65536)
      if not data then
        if errs then errs[#errs + 1] = { msg, code } end
        return
      end
      if data == "" then return end
      assert(conn:sendall(data))
    end
  end
end

-- Connect a plain socket to port with a 4 s timeout.
local function tcp(port)
  local s = assert(socket.create_connection({ "127.0.0.1", port }, 4))
  return s
end

-- A client handshake against a server using certificate `name` (with
-- the test CA trusted): returns wrap_socket's results, and the server's
-- error list.
local function handshake_with(name, host, cctx)
  local errs = {}
  local _, port = serve(tls.server_ctx(name), echo(errs))
  local res
  run(function()
    res = table.pack((cctx or tls.client_ctx()):wrap_socket(tcp(port), { server_hostname = host or "localhost" }))
    if res[1] then res[1]:close() end
  end)
  return res, errs
end

describe("TLS sockets", function()
  it("talk through create_connection and create_server in tasks", function()
    local _, port = serve(tls.server_ctx(), echo())
    run(function()
      local t = assert(socket.create_connection({ "127.0.0.1", port }, 4, nil,
                                                { ssl = tls.client_ctx() }))
      assert.are.equal("127.0.0.1", t.server_hostname)
      assert.is_false(t.server_side)
      assert.are.equal(socket.AF_INET, t.family)
      assert.are.equal(5, t:send("hello"))
      assert.are.equal("hello", t:recv(100))
      assert.is_true(t:sendall("world"))
      assert.are.equal("world", t:recv(100))
      assert.are.equal("", t:recv(0))
      assert.are.equal(0, t:pending())
      assert.truthy(tostring(t):match("^TLS socket %(fd %d+"))
      assert.is_true(t:close())
      assert.are.equal(-1, t:fileno())
      assert.has_error(function() t:recv(1) end, "attempt to use a closed socket")
    end)
  end)

  it("are readable for select while OpenSSL holds decrypted bytes", function()
    local _, port = serve(tls.server_ctx(), function(conn)
      assert(conn:sendall(("y"):rep(100)))
      assert.are.equal("done", conn:recv(10))
    end)
    run(function()
      local t = assert(tls.client_ctx():wrap_socket(tcp(port), { server_hostname = "localhost" }))
      local r = socket.select({ t }, {}, 4)     -- the record arrives
      assert.are.equal(t, r[1])
      assert.are.equal(("y"):rep(10), t:recv(10))
      assert.are.equal(90, t:pending())          -- the rest of the record, decrypted
      r = socket.select({ t }, {}, 0)            -- the descriptor has nothing
      assert.are.equal(t, r[1])
      assert.are.equal(("y"):rep(90), t:recv(100))
      assert.are.equal(0, t:pending())
      r = socket.select({ t }, {}, 0)
      assert.are.same({}, r)
      assert(t:sendall("done"))
      t:close()
    end)
  end)

  it("tell the certificate, cipher and version after the handshake", function()
    local _, port = serve(tls.server_ctx(), echo())
    run(function()
      local t = assert(tls.client_ctx():wrap_socket(tcp(port), { server_hostname = "localhost" }))
      local cert = t:getpeercert()
      assert.are.equal("localhost", cert.subject.commonName)
      assert.are.equal("luasock tests", cert.subject.organizationName)
      assert.are.equal("luasock test CA", cert.issuer.commonName)
      assert.are.same({ { "DNS", "localhost" }, { "IP Address", "127.0.0.1" },
                        { "IP Address", "::1" } }, cert.subjectAltName)
      assert.truthy(cert.notBefore:match("^%a%a%a [ %d]%d %d%d:%d%d:%d%d %d%d%d%d GMT$"))
      assert.truthy(cert.notAfter:match("GMT$"))
      assert.truthy(cert.serialNumber:match("^%x+$"))
      assert.are.equal(3, cert.version)
      local der = t:getpeercert(true)
      assert.are.equal(0x30, der:byte(1))   -- a DER SEQUENCE
      local name, proto, bits = t:cipher()
      assert.are.equal("TLSv1.3", t:version())
      assert.are.equal("TLSv1.3", proto)
      assert.truthy(name:match("^TLS_"))
      assert.is_true(bits >= 128)
      assert.is_nil(t:selected_alpn_protocol())
      t:close()
    end)
  end)

  -- getpeercert() described a certificate the client had not verified
  -- (CERT_NONE) as if it had; Python returns {} then, only the binary
  -- form still gives the DER.  (wrap_socket without its options table
  -- returned a string instead of the TLS socket.)
  it("describe an unverified peer certificate as {}, as Python does", function()
    local _, port = serve(tls.server_ctx(), echo())
    run(function()
      local cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
      cctx.check_hostname = false
      cctx.verify_mode = ssl.CERT_NONE
      local t = assert(cctx:wrap_socket(tcp(port)))
      assert.are.same({}, t:getpeercert())
      assert.are.equal(0x30, t:getpeercert(true):byte(1))   -- a DER SEQUENCE
      t:close()
    end)
  end)

  it("tell nothing before the handshake", function()
    local _, port = serve(tls.server_ctx(), echo())
    run(function()
      local t = assert(tls.client_ctx():wrap_socket(tcp(port),
        { server_hostname = "localhost", do_handshake_on_connect = false }))
      assert.is_nil(t:getpeercert())
      assert.is_nil(t:cipher())
      assert.is_nil(t:version())
      assert.is_true(t:do_handshake())
      assert.are.equal("localhost", t:getpeercert().subject.commonName)
      t:close()
    end)
  end)

  it("come from create_connection with ssl = true: the default context, verifying", function()
    local _, port = serve(tls.server_ctx(), echo())
    run(function()
      -- the test CA is in no system store: the default context refuses
      local t, msg, code = socket.create_connection({ "localhost", port }, 4, nil, { ssl = true })
      assert.is_nil(t)
      assert.are.equal("certificate verify failed: unable to get local issuer certificate", msg)
      assert.are.equal("X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY", code)
    end)
    assert.has_error(function() socket.create_connection({ "localhost", 1 }, 1, nil, { ssl = 1 }) end)
    assert.has_error(function() socket.create_server({ "127.0.0.1", 0 }, { ssl = true }) end)
  end)

  it("work outside tasks while the server runs in one", function()
    local _, port = serve(tls.server_ctx(), echo())
    local t = assert(socket.create_connection({ "localhost", port }, 4, nil,
                                              { ssl = tls.client_ctx() }))
    assert.are.equal("localhost", t.server_hostname)
    assert.is_true(t:sendall("outside"))
    assert.are.equal("outside", t:recv(100))
    t:close()
    run()
  end)

  it("negotiate ALPN, the server's order first", function()
    local sctx = tls.server_ctx()
    assert(sctx:set_alpn_protocols({ "h2", "http/1.1" }))
    local got
    local _, port = serve(sctx, function(conn)
      assert(conn:do_handshake())
      got = conn:selected_alpn_protocol()
    end)
    run(function()
      local cctx = tls.client_ctx()
      assert(cctx:set_alpn_protocols({ "http/1.1", "h2" }))
      local t = assert(cctx:wrap_socket(tcp(port), { server_hostname = "localhost" }))
      assert.are.equal("h2", t:selected_alpn_protocol())
      t:close()
    end)
    assert.are.equal("h2", got)
  end)

  it("let an SNI callback pick the context by the name asked", function()
    local sctx, alt = tls.server_ctx(), tls.server_ctx("alt")
    local seen = {}
    sctx.sni_callback = function(sock, name, ctx)
      seen[#seen + 1] = name
      assert.are.equal(sctx, ctx)
      assert.is_true(sock.server_side)
      if name == "alt.localhost" then return alt end
    end
    local _, port = serve(sctx, echo(), 2)
    run(function()
      local t = assert(tls.client_ctx():wrap_socket(tcp(port), { server_hostname = "alt.localhost" }))
      assert.are.equal("alt.localhost", t:getpeercert().subject.commonName)
      t:close()
      t = assert(tls.client_ctx():wrap_socket(tcp(port), { server_hostname = "localhost" }))
      assert.are.equal("localhost", t:getpeercert().subject.commonName)
      t:close()
    end)
    assert.are.same({ "alt.localhost", "localhost" }, seen)
  end)

  it("abort the handshake when the SNI callback raises", function()
    local sctx = tls.server_ctx()
    sctx.sni_callback = function() error("no such site") end
    local errs = {}
    local _, port = serve(sctx, echo(errs))
    run(function()
      local t, msg, code = tls.client_ctx():wrap_socket(tcp(port), { server_hostname = "localhost" })
      assert.is_nil(t)
      assert.are.equal("string", type(msg))
      assert.are.equal("TLSV1_ALERT_INTERNAL_ERROR", code)
    end)
    assert.are.equal("SNI_CALLBACK_FAILED", errs[1][2])
    assert.truthy(errs[1][1]:find("no such site", 1, true))
  end)
end)

describe("TLS verification", function()
  it("fails on a host name the certificate does not name", function()
    local res = handshake_with("wronghost")
    assert.are.same({ nil, "certificate verify failed: hostname mismatch",
                      "X509_V_ERR_HOSTNAME_MISMATCH" }, { res[1], res[2], res[3] })
    res = handshake_with("server", "127.0.0.2")   -- an IP address it does not name
    assert.are.equal("X509_V_ERR_IP_ADDRESS_MISMATCH", res[3])
  end)

  it("fails on an expired certificate", function()
    local res = handshake_with("expired")
    assert.are.same({ nil, "certificate verify failed: certificate has expired",
                      "X509_V_ERR_CERT_HAS_EXPIRED" }, { res[1], res[2], res[3] })
  end)

  it("fails on a self-signed certificate", function()
    local res = handshake_with("selfsigned")
    assert.are.same({ nil, "certificate verify failed: self-signed certificate",
                      "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT" }, { res[1], res[2], res[3] })
  end)

  it("fails on a certificate from an unknown CA, and with no CA loaded", function()
    local res = handshake_with("unknownca")
    assert.are.equal("X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY", res[3])
    res = handshake_with("server", "localhost", ssl.create_default_context())
    assert.are.equal("X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY", res[3])
  end)

  it("accepts all of them with CERT_NONE", function()
    for _, name in ipairs { "wronghost", "expired", "selfsigned", "unknownca" } do
      local cctx = tls.client_ctx()
      cctx.check_hostname = false
      cctx.verify_mode = ssl.CERT_NONE
      local res = handshake_with(name, "localhost", cctx)
      assert.are.equal("userdata", type(res[1]), name .. ": " .. tostring(res[2]))
    end
  end)

  it("needs a server_hostname to check the host name", function()
    local a, b = socket.socketpair()
    assert.has_error(function() tls.client_ctx():wrap_socket(a) end,
      "check_hostname requires server_hostname")
    assert.has_error(function() tls.server_ctx():wrap_socket(a) end)   -- a server context
    assert.has_error(function() tls.client_ctx():wrap_socket(a, { server_side = true }) end)
    assert.has_error(function() tls.client_ctx():wrap_socket(a, { bogus = true }) end)
    assert.has_error(function() tls.client_ctx():wrap_socket(a, { server_hostname = 1 }) end)
    assert.has_error(function() tls.client_ctx():wrap_socket(a, { suppress_ragged_eofs = 1 }) end)
    local u = assert(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    assert.has_error(function() tls.client_ctx():wrap_socket(u, { server_hostname = "x" }) end)
    a:close(); b:close(); u:close()
  end)

  it("checks client certificates when the server asks (mutual TLS)", function()
    local sctx = tls.server_ctx()
    sctx.verify_mode = ssl.CERT_REQUIRED
    assert(sctx:load_verify_locations(tls.certs().ca))
    local peer, errs = nil, {}
    local _, port = serve(sctx, function(conn)
      local ok, msg, code = conn:do_handshake()
      if not ok then errs[#errs + 1] = code return end
      peer = conn:getpeercert()
      echo()(conn)
    end, 2)
    run(function()
      local t = assert(tls.client_ctx(true):wrap_socket(tcp(port), { server_hostname = "localhost" }))
      assert(t:sendall("mine"))
      assert.are.equal("mine", t:recv(10))
      t:close()
      -- without a certificate: TLS 1.3 tells the client on its first read
      t = tls.client_ctx():wrap_socket(tcp(port), { server_hostname = "localhost" })
      local data, _, code = t:recv(10)
      assert.is_nil(data)
      assert.are.equal("TLSV13_ALERT_CERTIFICATE_REQUIRED", code)
      t:close()
    end)
    assert.are.equal("luasock client", peer.subject.commonName)
    assert.are.same({ "PEER_DID_NOT_RETURN_A_CERTIFICATE" }, errs)
  end)
end)

describe("TLS failures", function()
  it("stay with the call that had them: another task's calls go on clean", function()
    -- OpenSSL's error queue is per thread, shared by every task: each
    -- call starts with it empty and leaves it empty
    local go = false
    local _, port = serve(tls.server_ctx(), function(conn)
      assert(conn:do_handshake())
      while not go do socket.sleep(0.01) end
      assert(conn:sendall("data for B"))
      conn:shutdown(socket.SHUT_RDWR)       -- then an end without close_notify
    end)
    local _, bad_port = serve(tls.server_ctx("wronghost"), echo())
    local b_results = {}
    run(function()
      local b = assert(tls.client_ctx():wrap_socket(tcp(port),
        { server_hostname = "localhost", suppress_ragged_eofs = false }))
      socket.spawn(function()
        b_results[1] = { b:recv(100) }       -- waits while A fails
        b_results[2] = { b:recv(100) }
        b:close()
      end)
      local a, _, code = tls.client_ctx():wrap_socket(tcp(bad_port), { server_hostname = "localhost" })
      assert.is_nil(a)
      assert.are.equal("X509_V_ERR_HOSTNAME_MISMATCH", code)
      go = true
    end)
    assert.are.same({ "data for B" }, b_results[1])
    assert.are.same({ nil, "EOF occurred in violation of protocol", "UNEXPECTED_EOF" }, b_results[2])
  end)

  it("say UNEXPECTED_EOF for a close without close_notify only when asked", function()
    local _, port = serve(tls.server_ctx(), function(conn)
      assert(conn:sendall("bye"))
      conn:shutdown(socket.SHUT_RDWR)   -- TCP only: no close_notify
    end, 2)
    run(function()
      local t = assert(tls.client_ctx():wrap_socket(tcp(port), { server_hostname = "localhost" }))
      assert.are.equal("bye", t:recv(10))
      assert.are.equal("", t:recv(10))   -- suppress_ragged_eofs, as in Python
      t:close()
      t = assert(tls.client_ctx():wrap_socket(tcp(port),
        { server_hostname = "localhost", suppress_ragged_eofs = false }))
      assert.are.equal("bye", t:recv(10))
      assert.are.same({ nil, "EOF occurred in violation of protocol", "UNEXPECTED_EOF" },
                      { t:recv(10) })
      t:close()
    end)
  end)

  it("read a clean close_notify as the end of the stream", function()
    local _, port = serve(tls.server_ctx(), function(conn) assert(conn:sendall("x")) end)
    run(function()
      local t = assert(tls.client_ctx():wrap_socket(tcp(port),
        { server_hostname = "localhost", suppress_ragged_eofs = false }))
      assert.are.equal("x", t:recv(10))
      assert.are.equal("", t:recv(10))
      assert.are.equal("", t:recv(10))
      t:close()
    end)
  end)

  it("name the protocol error of a peer that does not speak TLS", function()
    local srv = assert(socket.create_server({ "127.0.0.1", 0 }))
    local port = srv:getsockname().port
    socket.spawn(function()
      local c = assert(srv:accept())
      c:sendall("HTTP/1.0 400 Bad Request\r\n\r\n")
      c:close()
      srv:close()
    end)
    run(function()
      local t, msg, code = tls.client_ctx():wrap_socket(tcp(port), { server_hostname = "localhost" })
      assert.is_nil(t)
      assert.are.equal("wrong version number", msg)
      assert.are.equal("WRONG_VERSION_NUMBER", code)
    end)
  end)

  it("time out a handshake with a silent server, and fail closed", function()
    local srv = assert(socket.create_server({ "127.0.0.1", 0 }))
    local port = srv:getsockname().port
    local held
    socket.spawn(function() held = assert(srv:accept()) end)
    run(function()
      local s = tcp(port)
      s:settimeout(0.2)
      local t0 = socket.gettime()
      local res = { tls.client_ctx():wrap_socket(s, { server_hostname = "localhost" }) }
      assert.are.same({ nil, "timeout", E.ETIMEDOUT }, res)
      assert.is_true(socket.gettime() - t0 >= 0.19)
    end)
    held:close()
    srv:close()
  end)

  -- create_connection gave the handshake a fresh timeout once connected:
  -- a slow connect and a server that never answers the handshake took up
  -- to twice the timeout.  The timeout is one deadline for the whole call.
  -- The connect is made slow by a full accept queue (listen(0) holding
  -- one connection): the client's SYN is dropped and resent a second
  -- later, after the server has made room (and never accepts it).
  for _, where in ipairs { "in a task", "outside any task" } do
    it("end create_connection with ssl at its deadline, handshake included, " .. where, function()
      local srv = assert(socket.socket())
      assert(srv:bind("127.0.0.1", 0))
      assert(srv:listen(0))
      local port = srv:getsockname().port
      local filler, held = tcp(port), nil
      socket.spawn(function()
        socket.sleep(0.3)                 -- the client's first SYN was dropped meanwhile
        held = assert(srv:accept())       -- the filler: room for the resent SYN
      end)
      local res, took
      local function call()
        local t0 = socket.gettime()
        res = { socket.create_connection({ "127.0.0.1", port }, 2.5, nil,
                                         { ssl = tls.client_ctx(), server_hostname = "localhost" }) }
        took = socket.gettime() - t0
      end
      if where == "in a task" then run(call) else call(); run() end
      assert.are.same({ nil, "timeout", E.ETIMEDOUT }, res)
      assert.is_true(took >= 2.45 and took < 3.2, "took " .. took)
      held:close()
      filler:close()
      srv:close()
    end)
  end

  it("bound an accepted socket's handshake by handshake_timeout", function()
    local sctx = tls.server_ctx()
    sctx.handshake_timeout = 0.2
    local res, took, after
    local srv = assert(socket.create_server({ "127.0.0.1", 0 }, { ssl = sctx }))
    local port = srv:getsockname().port
    local client
    run(function()
      socket.spawn(function()
        local conn = assert(srv:accept())
        conn:settimeout(nil)              -- no timeout of its own
        local t0 = socket.gettime()
        res = { conn:recv(10) }
        took = socket.gettime() - t0
        after = { conn:recv(10) }
        conn:close()
      end)
      client = tcp(port)                  -- connects and says nothing
    end)
    assert.are.same({ nil, "timeout", E.ETIMEDOUT }, res)
    assert.is_true(took >= 0.19 and took < 2, "took " .. took)
    assert.are.equal(E.ENOTCONN, after[3])   -- failed closed: no TLS any more
    assert.are.equal("", client:recv(10))  -- and the client sees the end
    client:close()
    srv:close()
  end)

  it("tell a waiting call that its socket was closed", function()
    local srv = assert(socket.create_server({ "127.0.0.1", 0 }, { ssl = tls.server_ctx() }))
    local port = srv:getsockname().port
    local res
    run(function()
      socket.spawn(function()
        local conn = assert(srv:accept())
        assert(conn:do_handshake())
        conn:close()
      end)
      local t = assert(tls.client_ctx():wrap_socket(tcp(port), { server_hostname = "localhost" }))
      socket.spawn(function() res = { t:recv(10) } end)
      socket.spawn(function() t:close() end)
    end)
    assert.are.same({ nil, "closed", E.EBADF }, res)
    srv:close()
  end)

  it("refuse flags and the calls that would bypass TLS", function()
    local _, port = serve(tls.server_ctx(), echo())
    run(function()
      local t = assert(tls.client_ctx():wrap_socket(tcp(port), { server_hostname = "localhost" }))
      assert.has_error(function() t:recv(10, socket.MSG_PEEK) end)
      assert.has_error(function() t:send("x", socket.MSG_DONTWAIT) end)
      assert.has_error(function() t:recvfrom(10) end, "operation not supported on a TLS socket")
      assert.has_error(function() t:sendto("x", { "127.0.0.1", 1 }) end)
      assert.has_error(function() t:dup() end)
      assert.has_error(function() t:recv(-1) end)
      t:close()
    end)
  end)
end)

describe("STARTTLS", function()
  it("gives TLS the bytes a plain stream had read ahead, as ciphertext", function()
    -- the client sends STARTTLS and its ClientHello at once; the server's
    -- stream reads the line and, in the same recv, the handshake's start
    local srv = assert(socket.create_server({ "127.0.0.1", 0 }))
    local port = srv:getsockname().port
    local got, stale
    socket.spawn(function()
      local c = assert(srv:accept())
      srv:close()
      c:settimeout(4)
      local f = c:makefile("rw")
      assert.are.equal("STARTTLS", f:read("l"))
      local t = assert(tls.server_ctx():wrap_socket(c, { server_side = true }))
      stale = { pcall(f.read, f, "l") }       -- the old stream is closed
      got = t:recv(100)
      assert(t:sendall("over TLS"))
      t:close()
    end)
    run(function()
      local s = tcp(port)
      assert(s:sendall("STARTTLS\n"))
      local t = assert(tls.client_ctx():wrap_socket(s, { server_hostname = "localhost" }))
      assert(t:sendall("hello"))
      assert.are.equal("over TLS", t:recv(100))
      t:close()
    end)
    assert.are.equal("hello", got)
    assert.is_false(stale[1])
    assert.truthy(stale[2]:find("closed stream", 1, true))
  end)

  it("upgrades a plain connection and unwraps it again", function()
    local srv = assert(socket.create_server({ "127.0.0.1", 0 }))
    local port = srv:getsockname().port
    local log = {}
    socket.spawn(function()
      local c = assert(srv:accept())
      c:settimeout(4)
      assert.are.equal("STARTTLS\n", c:recv(100))
      assert(c:sendall("GO\n"))
      local t = assert(tls.server_ctx():wrap_socket(c, { server_side = true }))
      assert.has_error(function() c:recv(1) end, "attempt to use a closed socket")
      log[#log + 1] = t:recv(100)
      assert(t:sendall("secret reply"))
      local plain = assert(t:unwrap())
      log[#log + 1] = plain:recv(100)
      plain:close()
      srv:close()
    end)
    run(function()
      local s = tcp(port)
      assert(s:sendall("STARTTLS\n"))
      assert.are.equal("GO\n", s:recv(100))
      local t = assert(tls.client_ctx():wrap_socket(s, { server_hostname = "localhost" }))
      assert(t:sendall("secret"))
      assert.are.equal("secret reply", t:recv(100))
      local plain = assert(t:unwrap())
      assert.are.equal(-1, t:fileno())
      assert(plain:sendall("plain again"))
      plain:close()
    end)
    assert.are.same({ "secret", "plain again" }, log)
  end)
end)

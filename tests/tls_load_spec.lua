-- tests/tls_load_spec.lua: TLS under load and misbehaving peers: a
-- client stalled mid-handshake that delays nobody, a peer vanishing in the middle of a record, 64 MiB
-- through sendall intact, a stream read that must wait to write, no descriptor or SSL object left behind by
-- collected sockets, and no SIGPIPE (every send says MSG_NOSIGNAL).
local socket = require "socket"
local ssl = require "socket.ssl"
local support = require "tests.support"
local tls = require "tests.tls_support"
local E = socket.errno

-- socket.run(fn) that must end cleanly within limit seconds.
local function run(fn, limit) return support.run_ok(limit, fn) end

-- A TLS listener on 127.0.0.1 (context sctx, default the test server's).
local function listener(sctx, backlog)
  local srv = assert(socket.create_server({ "127.0.0.1", 0 },
                                          { ssl = sctx or tls.server_ctx(), backlog = backlog }))
  srv:settimeout(20)
  return srv, srv:getsockname().port
end

local function client(port, cctx, opts)
  local s = assert(socket.create_connection({ "127.0.0.1", port }, 20))
  opts = opts or {}
  opts.server_hostname = "localhost"
  return (cctx or tls.client_ctx()):wrap_socket(s, opts)
end

describe("TLS under load", function()
  it("lets other clients shake hands while one stalls mid-handshake", function()
    local sctx = tls.server_ctx()
    sctx.handshake_timeout = 3
    local srv, port = listener(sctx)
    local stalled_result, times = nil, {}
    run(function()
      socket.spawn(function()
        for i = 1, 11 do
          local conn = assert(srv:accept())
          socket.spawn(function()
            local ok, msg, code = conn:do_handshake()
            if i == 1 then stalled_result = { ok, msg, code } end
            conn:close()
          end)
        end
        srv:close()
      end)
      -- the stalled client: a TLS record header announcing 300 bytes, then nothing
      local raw = assert(socket.create_connection({ "127.0.0.1", port }, 20))
      assert(raw:sendall("\22\3\1\1\44"))
      for i = 1, 10 do
        local took, t = support.timed(client, port)
        times[i] = took
        assert(t):close()
      end
      socket.spawn(function()
        assert.are.equal("", raw:recv(10))   -- the server gave up on it
        raw:close()
      end)
    end, 20)
    for _, took in ipairs(times) do support.assert_took(took, 0, 1.5) end
    assert.are.same({ nil, "timeout", E.ETIMEDOUT }, stalled_result)
  end)

  -- Relay between a TLS server and a client through plain sockets; once
  -- the server has sent `after` bytes, pass on only 100 more of the next
  -- chunk, then end the client's connection (abort: with a reset).
  local function truncating_relay(port, after, abort)
    local front = assert(socket.create_server({ "127.0.0.1", 0 }))
    front:settimeout(20)
    socket.spawn(function()
      local c = assert(front:accept())
      front:close()
      local up = assert(socket.create_connection({ "127.0.0.1", port }, 20))
      c:settimeout(20)
      socket.spawn(function()                 -- client to server: as is
        while true do
          local d = c:recv(65536)
          if not d or d == "" then break end
          if not up:sendall(d) then break end
        end
      end)
      local sent = 0
      while true do
        local d = assert(up:recv(65536))
        if sent >= after then
          c:sendall(d:sub(1, 100))
          break
        end
        sent = sent + #d
        assert(c:sendall(d))
      end
      if abort then c:setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, string.pack("ii", 1, 0)) end
      c:close()
      up:close()
    end)
    return front:getsockname().port
  end

  for _, case in ipairs {
    { "closes", false, { nil, "EOF occurred in violation of protocol", "UNEXPECTED_EOF" } },
    { "resets", true, { nil, "Connection reset by peer", E.ECONNRESET } },
  } do
    it("reports a peer that " .. case[1] .. " in the middle of a record", function()
      local srv, port = listener()
      local got, total = nil, 0
      run(function()
        socket.spawn(function()
          local conn = assert(srv:accept())
          srv:close()
          assert(conn:recv(10))                -- the client is ready
          conn:sendall(("x"):rep(1 << 20))     -- fails once the relay gives up
          conn:close()
        end)
        -- Cut well inside the 1 MiB of data, past the handshake: OpenSSL 3.5's
        -- first server flight alone (ML-KEM key share) exceeds 1,000 bytes,
        -- and a cut there closed the relay before it had read the client's
        -- "go", so the close sent a reset instead of a FIN.
        local t = assert(client(truncating_relay(port, 1 << 16, case[2]), nil,
                                { suppress_ragged_eofs = false }))
        assert(t:sendall("go"))
        while true do
          local d, msg, code = t:recv(65536)
          if not d or d == "" then got = { d, msg, code } break end
          total = total + #d
        end
        t:close()
      end, 20)
      assert.are.same(case[3], got)
      assert(total < 1 << 20)
    end)
  end

  it("carries 64 MiB through sendall intact", function()
    local block = {}
    for i = 0, 1023 do block[#block + 1] = string.pack(">I4", i * 2654435761 % 4294967296) end
    local data = table.concat(block):rep(16 * 1024)   -- 64 MiB, no period shorter than 4 KiB
    assert.are.equal(64 << 20, #data)
    local srv, port = listener()
    local received
    run(function()
      socket.spawn(function()
        local conn = assert(srv:accept())
        srv:close()
        conn:settimeout(20)
        local parts, n = {}, 0
        while n < #data do
          local d = assert(conn:recv(65536))
          assert(d ~= "", "the end of the stream came early")
          parts[#parts + 1] = d
          n = n + #d
        end
        received = table.concat(parts)
        assert(conn:sendall("ok"))
        conn:close()
      end)
      local t = assert(client(port))
      assert.is_true(t:sendall(data))
      -- read before closing: closing with unread input (TLS 1.3's session
      -- tickets) would reset the connection under the server's last reads
      assert.are.equal("ok", t:recv(10))
      t:close()
    end, 60)
    assert.are.equal(#data, #received)
    assert.is_true(received == data)
  end)

  -- This process's CPU time in clock ticks.
  local function cputicks()
    local f = assert(io.open("/proc/self/stat"))
    local fields = {}
    for w in f:read("a"):match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
    f:close()
    return tonumber(fields[12]) + tonumber(fields[13])
  end

  -- A stream read whose SSL_read must write (the server's handshake
  -- flight, the handshake being lazy) while the peer reads nothing: the
  -- read waits for writability, without spinning or failing, and ends
  -- once the peer drains.  The flight is made larger than the send
  -- buffer and the peer's window by a chain of 100 certificates.
  it("lets a stream read wait to write until the peer drains", function()
    local c = tls.certs()
    local chain = { support.read_file(c.server) }
    for i = 2, 101 do chain[i] = support.read_file(c.ca) end
    local sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert(sctx:load_cert_chain(support.temp_file(table.concat(chain)), c.server_key))
    local srv = assert(socket.create_server({ "127.0.0.1", 0 }))
    srv:settimeout(10)
    local line, err
    socket.spawn(function()
      local conn = assert(srv:accept())
      assert(conn:setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096))
      local t = assert(sctx:wrap_socket(conn, { server_side = true, do_handshake_on_connect = false }))
      t:settimeout(10)
      local f = t:makefile("r")
      line, err = f:read("l")
      f:close()
      t:close()
    end)
    local peer = support.start({ support.PYTHON, "tests/peers/tls_slow_reader.py",
                                 tostring(srv:getsockname().port) }, { stdin = "pipe" })
    peer:expect("^hello sent$", 10)
    local ticks = cputicks()
    socket.sleep(0.5)                      -- the server's read waits meanwhile
    assert.is_nil(line, err)
    assert.is_true(cputicks() - ticks <= 10, "the waiting read used CPU")   -- 0.1 s of 0.5
    peer:send("go\n")
    peer:expect("^done$", 10)
    run(function() end, 10)                -- until the server's task ends
    assert.are.equal("hello", line, err)
    peer:close_stdin()
    assert.are.equal(0, peer:wait(10))
    srv:close()
  end)
end)

describe("TLS resources", function()
  it("are freed when sockets are collected without close", function()
    collectgarbage()
    local live0, fds0 = ssl._live_objects(), support.count_fds()
    local srv, port = listener()
    run(function()
      socket.spawn(function()
        for _ = 1, 20 do
          local conn = assert(srv:accept())
          assert(conn:do_handshake())         -- conn dropped, never closed
        end
        srv:close()
      end)
      for _ = 1, 20 do assert(client(port)) end   -- dropped too
    end, 20)
    assert.is_true(ssl._live_objects() > live0)   -- the count sees them
    collectgarbage()
    collectgarbage()
    assert.are.equal(live0, ssl._live_objects())
    assert.are.equal(fds0, support.count_fds())
  end)

  it("send with MSG_NOSIGNAL, so a dead peer never raises SIGPIPE", function()
    -- luasock catches SIGPIPE itself: the flags are what proves the BIO safe
    -- for any host, so the child's sends are traced
    local script = support.temp_file([[
      local socket = require "socket"
      local tls = dofile(arg[1] .. "/tests/tls_support.lua")
      local srv = assert(socket.create_server({"127.0.0.1", 0}, {ssl = tls.server_ctx()}))
      local port = srv:getsockname().port
      socket.run(function()
        socket.spawn(function()
          local c = assert(srv:accept())
          assert(c:do_handshake())
          c:close()
        end)
        local s = assert(socket.create_connection({"127.0.0.1", port}, 5))
        local t = assert(tls.client_ctx():wrap_socket(s, {server_hostname = "localhost"}))
        local r
        repeat r = {t:sendall(("x"):rep(65536))} until not r[1]
        print("send failed", r[3])
      end)
    ]])
    local trace = support.temp_path("trace")
    local res = support.run({ "strace", "-f", "-qq", "-e", "trace=sendto,sendmsg", "-o", trace,
                              support.LUASOCK, script, support.absolute(".") },
                            { limit = 30, env = { ASAN_OPTIONS = "detect_leaks=0" } })  -- LeakSanitizer cannot run under ptrace
    assert.are.equal(0, res.code, res.err)
    local code = tonumber(res.out:match("send failed\t(%d+)"))
    assert.is_true(code == E.EPIPE or code == E.ECONNRESET, res.out)
    local sends = 0
    for line in support.read_file(trace):gmatch("[^\n]+") do
      if line:find("sendto%(") then
        sends = sends + 1
        assert.truthy(line:find("MSG_NOSIGNAL", 1, true), line)
      end
    end
    assert.is_true(sends > 3, "sends traced: " .. sends)
  end)
end)

-- bulk_tls_spec: the bulk calls on TLS sockets.  recv_into reads through
-- TLS and sendall sends a buffer's range through it (never around it on
-- the raw descriptor); socket.relay between a plain and a TLS socket copies
-- through TLS, content intact both ways; sendfile on a TLS socket is
-- refused.
local socket = require "socket"
local support = require "tests.support"
local tls = require "tests.tls_support"

-- A TLS client and its server end over TCP, both shaken hands.
local function tls_pair()
  local sctx, cctx = tls.server_ctx(), tls.client_ctx()   -- the certificates made first
  local c, s = support.pair("tcp")
  local ct, st
  socket.spawn(function() st = assert(sctx:wrap_socket(s, { server_side = true })) end)
  socket.spawn(function() ct = assert(cctx:wrap_socket(c, { server_hostname = "localhost" })) end)
  support.run_tasks()
  return ct, st
end

describe("bulk calls on TLS sockets", function()
  it("recv_into and sendall of a buffer go through TLS, intact", function()
    local client, server = tls_pair()
    local data = support.blocks(1000000)
    local echoed
    socket.spawn(function() assert(client:sendall(data)) end)
    socket.spawn(function() echoed = support.recv_all(client, #data) end)
    socket.spawn(function()
      local buf, n = socket.buffer(20000), 0
      while n < #data do
        local got = assert(server:recv_into(buf))
        assert.is_true(got > 0)
        assert(server:sendall(buf, 1, got))
        n = n + got
      end
    end)
    support.run_tasks()
    assert.is_true(echoed == data)
    assert.has_error(function() server:recv_into(socket.buffer(4), 4, socket.MSG_PEEK) end)
    assert.has_error(function() server:recvfrom_into(socket.buffer(4)) end)
    client:close(); server:close()
  end)

  it("relay copies between a plain socket and a TLS one, both ways", function()
    local left, a = support.pair("tcp")
    local b, right = tls_pair()
    local up, down = support.blocks(1500000), support.blocks(700000):reverse()
    local at_left, r
    socket.spawn(function()
      assert(left:sendall(up))
      left:shutdown(socket.SHUT_WR)
      at_left = support.recv_all(left)
    end)
    socket.spawn(function()
      assert.is_true(support.recv_all(right, #up) == up)
      assert(right:sendall(down))
      right:close()   -- TLS has no half-close: the relay sees the end when it closes
    end)
    socket.spawn(function() r = table.pack(socket.relay(a, b, 10)) end)
    support.run_tasks()
    assert.same({ n = 2, #up, #down }, r)
    assert.is_true(at_left == down)
    for _, s in ipairs({ left, a, b }) do s:close() end
  end)

  it("sendfile refuses a TLS socket", function()
    local client, server = tls_pair()
    local f = assert(io.open(support.temp_file("abc"), "rb"))
    assert.has_error(function() client:sendfile(f) end, "sendfile is not supported on a TLS socket")
    f:close(); client:close(); server:close()
  end)
end)

-- tests/tls_scale_spec.lua: 500 TLS connections at once, each end in its
-- own task of one process (1,000 handshake halves): alone in its file, so
-- that its time (seconds under ASan on a loaded machine) has CTest's whole
-- budget.  Timeouts are generous: the test is about all of them finishing,
-- and the sockets' timeouts count wall-clock time, which at a load of 20
-- went past 90 s under ASan (socket.run's limit leaves out the waits for
-- a CPU).
local socket = require "socket"
local support = require "tests.support"
local tls = require "tests.tls_support"

local function run(fn, limit) return support.run_ok(limit, fn) end

describe("TLS at scale", function()
  it("serves 500 connections at once, each in its task", function()
    local N = 500
    local srv = assert(socket.create_server({ "127.0.0.1", 0 }, { ssl = tls.server_ctx(), backlog = N }))
    srv:settimeout(300)
    local port = srv:getsockname().port
    local cctx = tls.client_ctx()
    local served, answered = 0, 0
    run(function()
      socket.spawn(function()
        for _ = 1, N do
          local conn = assert(srv:accept())
          socket.spawn(function()
            conn:settimeout(300)
            local data = assert(conn:recv(100))
            assert(conn:sendall("re:" .. data))
            served = served + 1
            conn:close()
          end)
        end
        srv:close()
      end)
      for i = 1, N do
        socket.spawn(function()
          local s = assert(socket.create_connection({ "127.0.0.1", port }, 300))
          local t = assert(cctx:wrap_socket(s, { server_hostname = "localhost" }))
          assert(t:sendall("n" .. i))
          assert.are.equal("re:n" .. i, t:recv(100))
          answered = answered + 1
          t:close()
        end)
      end
    end, 110)
    assert.are.equal(N, served)
    assert.are.equal(N, answered)
  end)
end)

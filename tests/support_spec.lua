-- support_spec: tests/support.lua itself, which every spec leans on: a
-- connected pair of every kind carries data both ways, a child's words
-- reach it unchanged, a child that outlives its time limit fails the test,
-- and what a test defers runs after it.
local socket = require "socket"
local support = require "tests.support"

describe("tests/support.lua", function()
  it("pair(kind) connects two sockets of every kind, both ways", function()
    local kinds = { "socketpair", "socketpair_dgram", "socketpair_seqpacket" }
    for kind in pairs(support.KINDS) do kinds[#kinds + 1] = kind end
    local v6 = support.has_ipv6()
    for _, kind in ipairs(kinds) do
      if v6 or not kind:match("6$") then
        local a, b = support.pair(kind)
        assert.equal(2, a:gettimeout(), kind)
        assert.is_true(support.is_cloexec(a:fileno()) and support.is_nonblocking(b:fileno()), kind)
        assert.equal(4, a:send("ping"), kind)
        assert.equal("ping", b:recv(10), kind)
        assert.equal(4, b:send("pong"), kind)
        assert.equal("pong", a:recv(10), kind)
        a:close(); b:close()
      end
    end
  end)

  it("listener(kind) listens on a fresh address; connected(kind) accepts from it", function()
    for _, kind in ipairs({ "tcp", "unix", "seqpacket", "abstract" }) do
      local l, c, conn, peer = support.connected(kind)
      assert.equal(1, l:getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN), kind)
      assert.is_not_nil(peer, kind)
      assert(c:sendall("x")); assert.equal("x", conn:recv(1), kind)
      l:close(); c:close(); conn:close()
    end
  end)

  it("run passes words unchanged and returns out, err and the exit status", function()
    local odd = "it's \"quoted\" $HOME `x` \\ *"
    local r = support.run({ "sh", "-c", 'printf %s "$1"; printf %s "$X" >&2; exit 3', "sh", odd },
                          { env = { X = odd } })
    assert.same({ out = odd, err = odd, how = "exit", code = 3 }, r)
  end)

  it("run fails the test when the child outlives its time limit", function()
    local t0 = socket.gettime()
    assert.error_matches(function() support.run({ "sleep", "30" }, { limit = 0.2 }) end,
                         "sleep ran longer than 0.2 s")
    assert.is_true(socket.gettime() - t0 < 10)
  end)

  it("start reads a child's address with a time limit; defer runs after the test", function()
    local c = support.start({ "sh", "-c", "echo 'listening on 127.0.0.1:4242'; exec sleep 30" },
                            { stdin = "null" })
    assert.same({ "127.0.0.1", 4242 }, { c:address("listening on") })
    assert.same({ nil, "timeout" }, { c:line(0.1) })
    local dir = support.temp_dir()
    support.defer(function() _G.SUPPORT_SPEC_DIR = dir end)
  end)

  it("... and so the last test's directory is gone", function()
    assert.is_string(_G.SUPPORT_SPEC_DIR)
    assert.is_nil(io.open(_G.SUPPORT_SPEC_DIR))
    _G.SUPPORT_SPEC_DIR = nil
  end)
end)

-- tests/lua54/luasock_module_spec.lua: luasock as a Lua C module of the stock
-- interpreter.  This spec runs under lua5.4 itself (busted started by
-- lua5.4, see tests/tests.cmake), which finds the build's luasock.so
-- through LUA_CPATH: the module, its tasks and its bundled Lua modules
-- must work there as under the luasock program.
local support = require "tests.support"

local socket = require "luasock"

-- Run fn as a task and the loop until every task ended, within limit
-- seconds; returns what socket.run returned.
local function run_within(limit, fn)
  local started = socket.gettime()
  local ok, err = socket.run(fn)
  assert.is_true(socket.gettime() - started < limit, "socket.run took too long")
  return ok, err
end

describe("require 'luasock' in lua5.4", function()
  it("runs in the stock interpreter, with one Lua core in the process", function()
    assert.is_nil(rawget(_G, "socket"))
    assert.matches("^Lua 5%.4", _VERSION)
    assert.is_nil(package.preload.socket, "luasock's program would preload socket")
    local maps = support.read_file("/proc/self/maps")
    assert.matches("/luasock%.so\n", maps)
    assert.not_matches("/liblua5%.4%.so", maps, "a second Lua core was loaded")
  end)

  it("gives the socket module: functions, constants, errno, sockets", function()
    assert.are.equal("function", type(socket.socket))
    assert.are.equal(2, socket.AF_INET)
    assert.are.equal(111, socket.errno.ECONNREFUSED)
    local s <close> = assert(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    assert.matches("^socket %(fd %d+", tostring(s))
    assert.are.equal(socket, require "luasock")
  end)

  it("gives TLS as luasock.ssl, and leaves package.loaded.socket alone", function()
    local before = package.loaded.socket
    local ssl = require "luasock.ssl"
    assert.are.equal("function", type(ssl.create_default_context))
    local ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert.is_true(ctx.check_hostname)
    assert.are.equal(before, package.loaded.socket)
  end)

  it("preloads the bundled Lua modules", function()
    assert.are.equal("function", type(package.preload["luasock.create"]))
    assert.are.equal("function", type(require "luasock.create"))   -- what create.lua returns
  end)

  it("serves a client from a server task, both in tasks", function()
    local srv <close> = assert(socket.create_server({ "127.0.0.1", 0 }))
    srv:settimeout(2)
    local served
    local ok, err = run_within(5, function()
      socket.spawn(function()
        local conn <close> = assert(srv:accept())
        conn:settimeout(2)
        local f = conn:makefile("rw")
        for line in f:lines() do f:write(line:upper(), "\n"):flush() end
        served = true
      end)
      socket.spawn(function()
        local c <close> = assert(socket.create_connection(srv:getsockname(), 2))
        local f = c:makefile("rw")
        local replies = {}
        for _, word in ipairs({ "one", "two", "three" }) do
          f:write(word, "\n"):flush()
          replies[#replies + 1] = f:read("l")
        end
        assert.are.same({ "ONE", "TWO", "THREE" }, replies)
        c:shutdown(socket.SHUT_WR)
      end)
    end)
    assert.are.same({ true, nil, true }, { ok, err, served })
  end)

  -- A coroutine lua5.4 made before require "luasock" had no loop in its
  -- extra space: every socket call in it raised "the socket loop is
  -- closed".  A fresh lua5.4 shows it (this one loaded luasock long ago).
  -- Such a thread copied lua5.4's main thread's extra space, which Lua
  -- never initialises: glibc's first block is zeroed, but ASan fills new
  -- blocks with 0xbe, which no code can tell from a pointer; so under ASan
  -- the child gets zeroed blocks, as from glibc.
  it("works in a coroutine made before require 'luasock'", function()
    local r = support.run({ "lua5.4", "-e", [[
      local co = coroutine.wrap(function()
        local socket = require "luasock"
        local a, b = socket.socketpair()
        assert(socket.run(function()
          socket.spawn(function() a:sendall("from a task") a:close() end)
          print(b:recv(100))
        end))
      end)
      co()]] }, { env = { ASAN_OPTIONS = "max_malloc_fill_size=0" } })
    assert.are.same({ "from a task\n", "", 0 }, { r.out, r.err, r.code })
  end)

  it("reports a failing task and returns false with its error", function()
    local ok, err = run_within(5, function() error("task failed on purpose") end)
    assert.is_false(ok)
    assert.matches("task failed on purpose", tostring(err), 1, true)
  end)

  it("leaves require 'socket' to LuaSocket when it is installed", function()
    local path = package.searchpath("socket", package.path)
    if not path then
      pending("LuaSocket (lua-socket) is not installed")
      return
    end
    local luasocket = require "socket"
    assert.are_not.equal(socket, luasocket)
    assert.matches("^LuaSocket", luasocket._VERSION)
    local s <close> = assert(socket.socket())   -- both work side by side
    local t = assert(luasocket.tcp())
    t:close()
    package.loaded.socket = nil
  end)
end)

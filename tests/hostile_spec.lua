-- hostile_spec: plain Lua that misuses what the module makes reachable
-- gets a clear error, never a crash.
--
-- Metamethods take anything.  getmetatable(addr).__tostring(42), and
-- __index(42, "host") and __eq(42, {}) on an address's metatable, read
-- their first argument as a table without looking: a SIGSEGV from plain
-- Lua.  The metatables of the loop and of tasks, reachable through
-- debug.getregistry(), had the same flaw in their __gc and __close.
--
-- socket.run inside a task the script resumed itself
-- (co = socket.spawn(function() socket.run() end); coroutine.resume(co))
-- was not refused: the loop resumed, then reset, the coroutine running
-- run, with nonsense errors and later a SIGSEGV in lua_resume.  Now it
-- raises "socket.run called from inside a task"; a run called from a
-- coroutine such a task resumed in turn raises too, and tasks the script
-- ran to their end itself are ended quietly by the next run.
--
-- A task on a wait list (queue get, lock acquire) that the script resumed
-- itself took the resume for the loop's wake: get returned nil, acquire
-- returned without the lock, and a later put or release handed its value
-- or unit to the stale list entry, where it was lost.  Such a resume now
-- only parks the task again.
--
-- Each case runs in a child luasock, so that a crash fails the test
-- instead of killing busted.
local support = require "tests.support"

-- Run a chunk in a child luasock; returns its output (stdout and stderr)
-- and exit status.
local function child(code)
  local script = support.temp_file('local socket = require "socket"\n' .. code)
  local r = support.run({ support.LUASOCK, script }, { stderr = "out", limit = 30 })
  return r.out, r.code
end

local function expect(code, pattern)
  local out, status = child(code)
  assert.equal(0, status, out)
  assert.matches(pattern, out)
end

describe("metamethods called with anything", function()
  it("of addresses raise instead of crashing", function()
    expect([[
      local s = socket.socket()
      local mt = getmetatable(s:getsockname())
      s:close()
      for _, call in ipairs({
        function() return mt.__tostring(42) end,
        function() return mt.__tostring(nil) end,
        function() return mt.__index(42, "host") end,
        function() return mt.__index("x", "port") end,
        function() return mt.__eq(42, {}) end,
        function() return mt.__eq({}, 42) end,
      }) do
        local ok, err = pcall(call)
        assert(not ok and err:find("table expected"), tostring(err))
      end
      assert(mt.__index({ "h", 1 }, {}) == nil)   -- a key that is no name
      assert(mt.__tostring({ "127.0.0.1", 80 }, "extra") == "127.0.0.1:80")
      print("ok")
    ]], "^ok\n$")
  end)

  it("of the loop and of tasks raise instead of crashing", function()
    expect([[
      socket.spawn(function() end)   -- makes sure both metatables exist
      local reg = debug.getregistry()
      for _, name in ipairs({ "luasock.loop", "luasock.task" }) do
        for _, mm in ipairs({ "__gc", "__close" }) do
          local fn = reg[name][mm]
          if fn then
            local ok, err = pcall(fn, 42)
            assert(not ok and err:find(name .. " expected"), tostring(err))
            ok, err = pcall(fn, io.stdout)
            assert(not ok and err:find(name .. " expected"), tostring(err))
          end
        end
      end
      assert(socket.run())
      print("ok")
    ]], "^ok\n$")
  end)
end)

-- spawn returns the Task; its coroutine is the Task's user value until it
-- ends, which is how a script gets hold of it to resume it itself.
describe("socket.run from a task the script resumed itself", function()
  it("is refused with a clear error", function()
    expect([[
      local co = debug.getuservalue(socket.spawn(function() return socket.run() end))
      local ok, err = coroutine.resume(co)
      assert(not ok and err:find("socket.run called from inside a task"), tostring(err))
      print((socket.run()))
    ]], "^true\n$")
  end)

  it("is refused from a coroutine that such a task resumed", function()
    expect([[
      local inner_err
      local co = debug.getuservalue(socket.spawn(function()
        local ok, err = coroutine.resume(coroutine.create(function() return socket.run() end))
        inner_err = err
        return ok
      end))
      assert(coroutine.resume(co))
      assert(inner_err:find("socket.run called while a task runs outside the loop"), inner_err)
      print((socket.run()))
    ]], "^true\n$")
  end)

  it("leaves the tasks the script ran to their end for run to close quietly", function()
    expect([[
      local done = 0
      local co = debug.getuservalue(socket.spawn(function() done = done + 1 end))
      assert(coroutine.resume(co))
      socket.spawn(function() done = done + 1 end)
      print(socket.run(), done)
    ]], "^true\t2\n$")
  end)
end)

describe("a task on a wait list that the script resumes itself", function()
  it("goes on waiting: a queue's get gets the value put later", function()
    expect([[
      local q = socket.queue()
      local got = "none"
      local t = socket.spawn(function() got = q:get() end)
      socket.spawn(function()   -- t waits in get now
        assert(coroutine.resume(debug.getuservalue(t)))
        assert(q:put("v"))
      end)
      assert(socket.run())
      print(got, q:len())
    ]], "^v\t0\n$")
  end)

  it("goes on waiting: a lock's acquire waits for the holder's release", function()
    expect([[
      local l, ev, order = socket.lock(), socket.event(), {}
      socket.spawn(function()
        l:acquire(); order[#order + 1] = "a"; ev:wait(); order[#order + 1] = "a done"; l:release()
      end)
      local b = socket.spawn(function() l:acquire(); order[#order + 1] = "b"; l:release() end)
      socket.spawn(function()   -- b waits in acquire now
        assert(coroutine.resume(debug.getuservalue(b)))
        ev:set()
      end)
      assert(socket.run())
      print(table.concat(order, ","))
    ]], "^a,a done,b\n$")
  end)
end)

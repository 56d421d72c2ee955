-- sched_outside_spec: a call that waits outside any task (on the main
-- thread) turns the loop meanwhile, so tasks run; it still ends at its own
-- deadline, and a task that closes its socket wakes it with "closed".
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

local run = support.run_tasks   -- socket.run, failing after 4 s

describe("a wait outside any task turns the loop", function()
  -- While code outside a task waits (here the spec itself, on the main
  -- thread), the tasks run.  Each test would fail if the outside wait
  -- blocked alone: the data the main thread waits for is sent by a task.
  it("recv on the main thread gets data a task sends meanwhile", function()
    local a, b = support.pair()
    local tk = support.ticker()
    socket.spawn(function() socket.sleep(0.02); assert(b:send("from a task")) end)
    local t0 = socket.gettime()
    assert.equal("from a task", a:recv(100))   -- would time out after 2 s
    assert.is_true(socket.gettime() - t0 < 1)
    assert.is_true(tk.n >= 2, "the ticker ran " .. tk.n .. " times")
    tk.stop = true
    assert.is_true(run())
    a:close(); b:close()
  end)

  it("accept and connect on the main thread, with a server task", function()
    local l = support.listener("tcp")
    local port = support.port_of(l)
    socket.spawn(function()   -- an echo server in a task
      local c = assert(l:accept())
      c:settimeout(2)
      assert(c:sendall(assert(c:recv(100))))
      c:close()
    end)
    local c <close> = assert(socket.create_connection({ "127.0.0.1", port }, 2))
    assert(c:sendall("echo me"))
    assert.equal("echo me", c:recv(100))
    assert.is_true(run())
    l:close()
  end)

  it("socket.sleep and select on the main thread let tasks run, and end on time", function()
    local tk = support.ticker()
    local long = socket.spawn(function() socket.sleep(30) end)   -- does not hold the main thread
    local t0 = socket.gettime()
    socket.sleep(0.1)
    local took = socket.gettime() - t0
    assert.is_true(took >= 0.099 and took < 0.5, "slept " .. took)
    assert.is_true(tk.n >= 2, "the ticker ran " .. tk.n .. " times")
    local a, b = support.pair()
    socket.spawn(function() socket.sleep(0.01); assert(b:send("x")) end)
    local r = socket.select({ a }, {}, 2)
    assert.same({ a }, r)
    tk.stop = true
    assert(long:cancel())
    assert.is_true(run())
    a:close(); b:close()
  end)

  it("with no task, waits as before; a task's timeout still holds while the main thread waits", function()
    local a, b = support.pair("socketpair", 0.05)
    local t0 = socket.gettime()
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { a:recv(10) })   -- no task: plain poll
    assert.is_true(socket.gettime() - t0 >= 0.049)
    local c, d = support.pair("socketpair", 0.05)
    local res
    socket.spawn(function() res = { c:recv(10) } end)
    a:settimeout(0.3)
    assert.same({ nil, "timeout", E.ETIMEDOUT }, { a:recv(10) })
    assert.same({ nil, "timeout", E.ETIMEDOUT }, res)   -- timed out during the main wait
    assert.is_true(run())
    a:close(); b:close(); c:close(); d:close()
  end)

  -- The order when the outside deadline and task timers pass together
  -- (a stall: here a task that hogs the CPU past both): the tasks whose
  -- timers expired run first, then the outside wait times out unless one
  -- of them ended it.  The turn used to time out first, so the value a
  -- task put at 10 ms was missed by a get that waited until 100 ms.
  it("after a stall, tasks whose timers expired run before the outside wait times out", function()
    local q = socket.queue()
    socket.spawn(function() socket.sleep(0.01); assert(q:put("on time")) end)
    socket.spawn(function()
      local t0 = socket.gettime()
      while socket.gettime() - t0 < 0.2 do end   -- the stall, past both deadlines
    end)
    assert.equal("on time", q:get(0.1))
    local a, b = support.pair()
    socket.spawn(function() socket.sleep(0.01); assert(b:send("x")) end)
    socket.spawn(function()
      local t0 = socket.gettime()
      while socket.gettime() - t0 < 0.2 do end
    end)
    a:settimeout(0.1)
    assert.equal("x", a:recv(1))
    assert.is_true(run())
    a:close(); b:close()
  end)

  it("a task that closes the socket the main thread waits on wakes it with nil, 'closed'", function()
    local a, b = support.pair()
    socket.spawn(function() socket.sleep(0.01); a:close() end)
    local t0 = socket.gettime()
    assert.same({ nil, "closed", E.EBADF }, { a:recv(10) })
    assert.is_true(socket.gettime() - t0 < 1)
    assert.is_true(run())
    b:close()
  end)

  -- Story: the outside wait polled the fd number it saw
  -- at entry.  A task that closed the socket and made a new one got the
  -- same number back, so the main thread watched the new socket: recv
  -- returned nil, "timeout" at the deadline (or never, with no timeout)
  -- instead of nil, "closed" at once.  The Watch's fd is now read again
  -- before each poll.
  it("a task that closes the socket and reuses its number wakes the wait with 'closed' at once", function()
    local a, b = support.pair("socketpair", 1)
    local keep, reused
    socket.spawn(function()
      local fd = b:fileno()
      b:close()
      keep = { assert(socket.socketpair()) }
      reused = keep[1]:fileno() == fd or keep[2]:fileno() == fd
    end)
    local t0 = socket.gettime()
    assert.same({ nil, "closed", E.EBADF }, { b:recv(10) })
    assert.is_true(socket.gettime() - t0 < 0.5, "took " .. (socket.gettime() - t0))
    assert.is_true(reused, "the descriptor number was not reused: the test proves nothing")
    assert.is_true(run())
    a:close(); keep[1]:close(); keep[2]:close()
  end)

  it("a task that fails meanwhile is reported, and the next run returns its error", function()
    local c = support.start({ support.LUASOCK, "-e", [[
local socket = require "socket"
local t1 = socket.spawn(function() socket.sleep(0.01); error("failed while main slept") end)
local t2 = socket.spawn(function() socket.sleep(0.02); error("second") end)
socket.sleep(0.1)
print("slept", t1:status(), t2:status())
print(socket.run())
print(socket.run())
]] }, { stdin = "null" })
    assert.equal("slept\tfailed\tfailed", c:line())
    assert.matches("^false\t[^\t]*: failed while main slept$", c:line())
    assert.equal("true", c:line())
    assert.equal(0, c:wait())
    local err = c:stderr()
    assert.matches("error in task: [^\n]*failed while main slept\nstack traceback:", err)
    assert.matches("second", err)
  end)

  it("a task cannot call run while the main thread waits; waits it cannot yield block", function()
    local a, b = support.pair()
    local res
    socket.spawn(function()
      res = { pcall(socket.run) }
      string.gsub("x", ".", function() socket.sleep(0.001) end)   -- blocks, no turn inside
      assert(b:send("done"))
    end)
    assert.equal("done", a:recv(10))
    assert.is_false(res[1])
    assert.matches("socket.run called from inside a task", res[2])
    assert.is_true(run())
    a:close(); b:close()
  end)
end)

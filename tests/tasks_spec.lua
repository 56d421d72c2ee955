-- tasks_spec: Task handles.  socket.spawn returns a Task: join (inside
-- and outside tasks, with and without a timeout), cancel in every state a
-- task can be in, status, tostring, socket.current and socket.tasks.
--
-- Nothing sleeps to synchronise: a task that must be waiting when another
-- acts on it was spawned first, and the loop runs tasks in spawn order.
local socket = require "socket"
local support = require "tests.support"

local LIMIT = 4   -- seconds any wait of this spec may take

local function run(...) return support.run_tasks_within(LIMIT, ...) end

-- A value whose __close records name in log.
local function closer(log, name)
  return setmetatable({}, { __close = function() log[#log + 1] = name end })
end

describe("Task handles", function()
  it("join returns true and the results, from outside a task (turning the loop)", function()
    local t = socket.spawn(function(a, b) socket.sleep(0.01); return a + b, nil, "x" end, 1, 2)
    assert.equal("ready", t:status())
    assert.same({ true, 3, nil, "x", n = 4 }, table.pack(t:join(LIMIT)))
    assert.equal("done", t:status())
    assert.same({ true, 3, nil, "x", n = 4 }, table.pack(t:join()))   -- again: kept
    assert.same({ true, n = 1 }, table.pack(socket.spawn(function() end):join()))
  end)

  it("join gives false and the error object of a failed task", function()
    local e = {}
    local t = socket.spawn(function() socket.sleep(0); error(e) end)
    local ok, err = t:join(LIMIT)
    assert.is_false(ok)
    assert.equal(e, err)
    assert.equal("failed", t:status())
    local ok2, err2 = run()   -- a failure is still reported to run
    assert.is_false(ok2)
    assert.equal(e, err2)
  end)

  it("join with a timeout gives nil, \"timeout\" and leaves the task running", function()
    local a, b = socket.socketpair()
    local t = socket.spawn(function() return a:recv(10) end)
    local t0 = socket.gettime()
    assert.same({ nil, "timeout" }, { t:join(0.05) })
    assert.is_true(socket.gettime() - t0 >= 0.049)
    assert.equal("waiting", t:status())
    assert.same({ nil, "timeout" }, { t:join(0) })
    b:send("hi")
    assert.same({ true, "hi" }, { t:join(LIMIT) })
    a:close(); b:close()
  end)

  it("join inside a task waits for the other task, in FIFO order with others", function()
    local a, b = socket.socketpair()
    local log = {}
    local worker = socket.spawn(function() return a:recv(10) end)
    for i = 1, 3 do
      socket.spawn(function()
        local ok, v = worker:join(LIMIT)
        log[#log + 1] = i .. (ok and v or "?")
      end)
    end
    socket.spawn(function()
      assert.same({ nil, "timeout" }, { worker:join(0.01) })
      b:send("v")
    end)
    assert.is_true(run())
    assert.same({ "1v", "2v", "3v" }, log)
    a:close(); b:close()
  end)

  it("join raises on misuse: not a task, a bad timeout, itself", function()
    local t = socket.spawn(function() end)
    assert.has_error(function() t.join({}) end)
    assert.has_error(function() t:join(-1) end, "bad argument #1 to 'join' (timeout must be non-negative)")
    assert.has_error(function() t:join("soon") end)
    assert.is_true(run())
    local ok, err = run(function() socket.current():join() end)
    assert.is_false(ok)
    assert.matches("a task cannot join itself", err)
    assert.has_error(function() getmetatable(t).__close(42) end)
  end)

  it("cancel ends a waiting task at once: its <close> variables close", function()
    local a, b = socket.socketpair()
    local log = {}
    local t = socket.spawn(function()
      local c <close> = closer(log, "closed")
      a:recv(10)
      log[#log + 1] = "received"
    end)
    socket.spawn(function()
      assert.equal("waiting", t:status())
      assert.is_true(t:cancel())
      assert.same({ "closed" }, log)     -- already
      assert.equal("cancelled", t:status())
      assert.same({ false, "cancelled" }, { t:join() })
      assert.is_false(t:cancel())        -- ended already
    end)
    assert.is_true(run())
    b:send("x")                          -- nobody waits on a any more
    assert.same({ "closed" }, log)
    a:close(); b:close()
  end)

  it("cancel from outside: a task that never ran, one asleep, one in accept", function()
    local l = socket.create_server({ "127.0.0.1", 0 })
    l:settimeout(nil)
    local log = {}
    local never = socket.spawn(function() log[#log + 1] = "ran" end)
    local sleeper = socket.spawn(function() local c <close> = closer(log, "sleeper"); socket.sleep(30) end)
    local acceptor = socket.spawn(function() local c <close> = closer(log, "acceptor"); l:accept() end)
    assert.is_true(never:cancel())
    socket.sleep(0)                      -- the loop turns: both start waiting
    assert.is_true(sleeper:cancel())
    assert.is_true(acceptor:cancel())
    assert.same({ "sleeper", "acceptor" }, log)
    for _, t in ipairs({ never, sleeper, acceptor }) do
      assert.equal("cancelled", t:status())
    end
    local t0 = socket.gettime()
    assert.is_true(run())
    assert.is_true(socket.gettime() - t0 < 1)
    l:close()
  end)

  it("a task that cancels itself ends at its next wait", function()
    local log = {}
    local t = socket.spawn(function()
      local c <close> = closer(log, "closed")
      assert.is_true(socket.current():cancel())
      assert.equal("running", socket.current():status())
      log[#log + 1] = "still running"
      socket.sleep(0)
      log[#log + 1] = "after the wait"
    end)
    assert.is_true(run())
    assert.same({ "still running", "closed" }, log)
    assert.equal("cancelled", t:status())
  end)

  it("status is \"running\" only for the task asking about itself", function()
    local seen, a = {}, nil
    a = socket.spawn(function()
      seen.self = a:status()
      coroutine.yield()                -- back to the run queue: ready
      socket.sleep(0)
    end)
    socket.spawn(function() seen.other = a:status() end)
    seen.outside = a:status()
    assert.is_true(run())
    assert.same({ self = "running", other = "ready", outside = "ready" }, seen)
  end)

  -- socket.tasks() used to walk the whole registry on every call (the
  -- test helpers call it after each test): slow with a big registry, and
  -- a Task the script kept in the registry itself was listed twice.
  it("socket.tasks lists each live task once, in time that does not grow with the registry", function()
    local reg = debug.getregistry()
    local t = socket.spawn(function() socket.sleep(0) end)
    reg.kept_task = t
    for i = 1, 300000 do reg[1e9 + i] = true end
    local t0 = socket.gettime()
    for _ = 1, 500 do assert.equal(1, #socket.tasks()) end
    local took = socket.gettime() - t0
    for i = 1, 300000 do reg[1e9 + i] = nil end
    reg.kept_task = nil
    assert.is_true(took < 1, "500 calls took " .. took .. " s")
    assert.same({ t }, socket.tasks())
    assert.is_true(run())
    assert.same({}, socket.tasks())
  end)

  it("a cancelled task's sockets are closed by their <close>", function()
    local a, b = socket.socketpair()
    local mine
    local before = support.count_fds()
    local t = socket.spawn(function()
      local s <close> = socket.socket()
      mine = s
      a:recv(10)
    end)
    socket.sleep(0)
    assert.is_true(mine:fileno() >= 0)
    assert.equal(before + 1, support.count_fds())
    t:cancel()
    assert.equal(-1, mine:fileno())              -- closed by the cancel itself
    assert.equal(before, support.count_fds())
    assert.is_true(run())
    a:close(); b:close()
  end)

  it("cancel ends a task waiting in sendall, a stream read, select, join", function()
    local a, b = socket.socketpair()
    local c, d = socket.socketpair()
    local waits = {
      sendall = function() return a:sendall(("x"):rep(8 * 1024 * 1024)) end,
      read = function() return c:makefile("r"):read("l") end,
      select = function() return socket.select({ d }, {}, 30) end,
      join = function() return socket.spawn(socket.sleep, 30):join() end,
    }
    local log, tasks = {}, {}
    for name, fn in pairs(waits) do
      tasks[name] = socket.spawn(function()
        local c <close> = closer(log, name)
        fn()
        log[#log + 1] = name .. " returned"
      end)
    end
    socket.sleep(0)                    -- the loop turns: each task waits
    for name, t in pairs(tasks) do
      assert.equal("waiting", t:status(), name)
      assert.is_true(t:cancel())
      assert.same({ false, "cancelled" }, { t:join() })
    end
    table.sort(log)
    assert.same({ "join", "read", "select", "sendall" }, log)
    for _, t in ipairs(socket.tasks()) do t:cancel() end   -- the sleeper join spawned
    assert.is_true(run())
    a:close(); b:close(); c:close(); d:close()
  end)

  -- The helper thread goes on with the abandoned lookup, and getaddrinfo
  -- may hold a descriptor (/etc/hosts) for a moment after the task ended:
  -- in busted's own process the test's descriptor count saw it once (ASan,
  -- fresh Debian 12).  A child luasock runs it; its exit waits for the job.
  it("a task cancelled while a helper thread resolves a name ends at once", function()
    local r = support.run({ support.LUASOCK, "-e", [[
local socket = require "socket"
local t = socket.spawn(function() return socket.getaddrinfo("localhost", 80) end)
socket.spawn(function() print(t:status()); t:cancel() end)
print(socket.run())
print(t:join())
]] }, { stderr = "out", limit = 30 })
    assert.equal("waiting\ntrue\nfalse\tcancelled\n", r.out)
    assert.equal(0, r.code)
  end)

  it("tostring names what a task waits on; current and tasks look at them", function()
    local a, b = socket.socketpair()
    local t = socket.spawn(function() return a:recv(10) end)
    local sl = socket.spawn(function() socket.sleep(10) end)
    assert.matches("^task 0x%x+: ready$", tostring(t))
    socket.sleep(0)
    assert.matches("^task 0x%x+: waiting to read fd " .. a:fileno() .. " in recv on socket %(fd "
                   .. a:fileno() .. ", AF_UNIX, SOCK_STREAM%)$", tostring(t))
    assert.matches("^task 0x%x+: waiting in sleep, %d+%.%d+ s left$", tostring(sl))
    local all = socket.tasks()
    assert.equal(2, #all)
    assert.is_true((all[1] == t and all[2] == sl) or (all[1] == sl and all[2] == t))
    assert.is_nil(socket.current())
    local me
    local cur = socket.spawn(function() me = socket.current() end)
    sl:cancel()
    b:send("x")
    assert.is_true(run())
    assert.equal(cur, me)
    assert.matches("^task 0x%x+: done$", tostring(t))
    assert.same({}, socket.tasks())
    a:close(); b:close()
  end)
end)

describe("socket.group", function()
  it("wait returns true once every task ended cleanly, in and out of tasks", function()
    local g <close> = socket.group()
    local done = {}
    for i = 1, 3 do g:spawn(function() socket.sleep(0.001 * i); done[#done + 1] = i end) end
    assert.is_true(g:wait(LIMIT))
    assert.same({ 1, 2, 3 }, done)
    local inner
    assert.is_true(run(function()
      local h <close> = socket.group()
      local t = h:spawn(function() return "r" end)
      inner = { h:wait(LIMIT) }
      assert.same({ true, "r" }, { t:join() })
    end))
    assert.same({ true }, inner)
  end)

  it("the first failure cancels the others and is returned", function()
    local log = {}
    local g <close> = socket.group()
    local slow = g:spawn(function() local c <close> = closer(log, "slow closed"); socket.sleep(30) end)
    local bad = g:spawn(function() socket.sleep(0.01); error("boom", 0) end)
    local t0 = socket.gettime()
    assert.same({ false, "boom" }, { g:wait(LIMIT) })
    assert.is_true(socket.gettime() - t0 < 1)
    assert.same({ "slow closed" }, log)
    assert.equal("cancelled", slow:status())
    assert.equal("failed", bad:status())
    assert.is_false(run())             -- the failure was reported too
  end)

  it("a failure cancels the others even while nobody waits on the group", function()
    local g <close> = socket.group()
    local slow = g:spawn(function() socket.sleep(30) end)
    g:spawn(function() error("boom", 0) end)
    assert.same({ false, "boom" }, { run() })
    assert.equal("cancelled", slow:status())
  end)

  it("wait times out and the tasks go on; leaving the scope cancels them", function()
    local a, b = socket.socketpair()
    local log, t = {}, nil
    do
      local g <close> = socket.group()
      t = g:spawn(function() local c <close> = closer(log, "closed"); return a:recv(10) end)
      assert.same({ nil, "timeout" }, { g:wait(0.02) })
      assert.equal("waiting", t:status())
      assert.same({}, log)
    end
    assert.same({ "closed" }, log)
    assert.equal("cancelled", t:status())
    assert.is_true(run())
    a:close(); b:close()
  end)

  it("an error leaving the scope cancels the tasks too; a closed group takes none", function()
    local t, g
    local ok = pcall(function()
      local grp <close> = socket.group()
      g = grp
      t = grp:spawn(function() socket.sleep(30) end)
      error("leaving")
    end)
    assert.is_false(ok)
    assert.equal("cancelled", t:status())
    assert.has_error(function() g:spawn(function() end) end, "attempt to spawn in a closed group")
    assert.has_error(function() socket.group():spawn(42) end)
    assert.has_error(function() socket.group():wait(-1) end)
    assert.has_error(function() socket.group().wait({}) end)
    assert.is_true(run())
  end)
end)

describe("socket.timeout", function()
  -- fn must end with nil, "timeout" after about secs.
  local function cut_after(secs, fn)
    local t0 = socket.gettime()
    local r = table.pack(fn())
    local took = socket.gettime() - t0
    assert.same({ nil, "timeout" }, { r[1], r[2] })
    assert.is_true(took >= secs - 0.001 and took < secs + 1, "took " .. took)
  end

  it("ends every wait inside fn by its deadline, whatever the socket's timeout", function()
    local a, b = socket.socketpair()
    a:settimeout(nil)
    cut_after(0.05, function() return socket.timeout(0.05, function() return a:recv(10) end) end)
    cut_after(0.05, function() return socket.timeout(0.05, socket.sleep, 10) end)
    local inner
    cut_after(0.05, function()
      return socket.timeout(0.05, function()
        inner = { a:recv(10) }
        local t0 = socket.gettime()
        local later = { socket.sleep(1) }          -- times out at once
        assert.is_true(socket.gettime() - t0 < 0.5)
        assert.same({ nil, "timeout" }, { later[1], later[2] })
        return "done"
      end)
    end)
    assert.same({ nil, "timeout" }, { inner[1], inner[2] })
    assert.same({ "x", 2 }, { socket.timeout(1, function(v) return v, 2 end, "x") })
    b:send("late")
    assert.equal("late", a:recv(10))               -- no scope any more
    a:close(); b:close()
  end)

  it("works in tasks; nested scopes take the earliest deadline", function()
    local a, b = socket.socketpair()
    local q, l = socket.queue(), socket.lock()
    l:acquire()
    assert.is_true(run(function()
      cut_after(0.05, function()
        return socket.timeout(1, function() return socket.timeout(0.05, a.recv, a, 10) end)
      end)
      cut_after(0.05, function()
        return socket.timeout(0.05, function() return socket.timeout(1, a.recv, a, 10) end)
      end)
      cut_after(0.03, function() return socket.timeout(0.03, q.get, q) end)
      cut_after(0.03, function() return socket.timeout(0.03, l.acquire, l) end)
      local ev, sig = socket.event(), socket.signals("USR2")
      local sleeper = socket.spawn(socket.sleep, 10)
      cut_after(0.03, function() return socket.timeout(0.03, ev.wait, ev) end)
      cut_after(0.03, function() return socket.timeout(0.03, sig.wait, sig) end)
      cut_after(0.03, function() return socket.timeout(0.03, sleeper.join, sleeper) end)
      sleeper:cancel()
      sig:close()
    end))
    a:close(); b:close()
  end)

  it("an error in fn leaves the scope: later waits have their own deadlines", function()
    local ok, err = pcall(socket.timeout, 0.01, function() error("inside", 0) end)
    assert.same({ false, "inside" }, { ok, err })
    local t0 = socket.gettime()
    assert.is_true(socket.sleep(0.05))
    assert.is_true(socket.gettime() - t0 >= 0.049)
    assert.has_error(function() socket.timeout(-1, print) end)
    assert.has_error(function() socket.timeout(1, 42) end)
  end)

  it("a task cancelled inside a group inside a scope: the scope's end cancels it", function()
    local log, member = {}, nil
    local res = { run(function()
      local r = { socket.timeout(0.05, function()
        local g <close> = socket.group()
        member = g:spawn(function()
          local c <close> = closer(log, "closed")
          socket.sleep(30)
        end)
        return g:wait()
      end) }
      log[#log + 1] = r[2]
    end) }
    assert.same({ true }, { res[1] })
    assert.same({ "closed", "timeout" }, log)
    assert.equal("cancelled", member:status())
  end)

  -- A task cancelled, closed or ended with its group while inside
  -- socket.timeout never comes back to the scope's continuation, where a
  -- scope is left.  Its scopes stayed open until its coroutine was
  -- collected: the loop went on counting them open, and until then every
  -- wait in the whole program paid a lookup of its thread's scope.  The
  -- task's end shuts them now.  The spec keeps the coroutines, so that
  -- nothing but the end can shut them, and finds their scopes in the
  -- registry (a scope's tostring tells whether it still counts as open).
  it("a task ended inside fn shuts its scopes at its end, not when collected", function()
    local reg = debug.getregistry()
    local function scopes_of(co)   -- innermost first
      for _, tab in pairs(reg) do
        local sc = type(tab) == "table" and rawget(tab, co)
        if sc and getmetatable(sc) == reg["luasock.scope"] then
          local chain = {}
          while sc do chain[#chain + 1] = sc; sc = debug.getuservalue(sc, 1) end
          return chain
        end
      end
    end
    local function states(chain)
      local t = {}
      for i, sc in ipairs(chain) do t[i] = tostring(sc) end
      return t
    end
    local open = { "deadline scope (open)", "deadline scope (open)" }
    local shut = { "deadline scope (shut)", "deadline scope (shut)" }
    local cos, chains = {}, {}
    local function enter()
      cos[#cos + 1] = coroutine.running()
      socket.timeout(30, socket.timeout, 20, socket.sleep, 30)
    end
    local cancelled, closed = socket.spawn(enter), socket.spawn(enter)
    assert.is_true(run(function()
      local g <close> = socket.group()
      g:spawn(enter)
      socket.sleep(0)   -- the loop turns: the member waits too
      for i, co in ipairs(cos) do
        chains[i] = assert(scopes_of(co))
        assert.same(open, states(chains[i]))
      end
      cancelled:cancel()
      coroutine.close(cos[2])
    end))                 -- leaving the task's scope ends the group
    assert.same({ "cancelled", "cancelled" }, { cancelled:status(), closed:status() })
    assert.equal(3, #chains)
    for i, co in ipairs(cos) do
      assert.same(shut, states(chains[i]), "task " .. i)
      assert.is_nil(scopes_of(co), "task " .. i)
    end
  end)
end)

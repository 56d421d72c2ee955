-- sync_spec: socket.queue, socket.event, socket.lock, socket.semaphore
-- and socket.signals.  Each between tasks and between a task and code
-- outside tasks; a timeout on every wait; waiters served in the order
-- they came; cancellation while waiting leaves the object consistent.
--
-- Nothing sleeps to synchronise: tasks run in spawn order, so a task
-- spawned first is waiting when one spawned after it acts.
local socket = require "socket"
local support = require "tests.support"

local LIMIT = 4   -- seconds any socket.run of this spec may take

local function run(...) return support.run_tasks_within(LIMIT, ...) end

-- fn() must return nil, "timeout" after about secs seconds.
local function times_out(secs, fn)
  local t0 = socket.gettime()
  local a, b = fn()
  local took = socket.gettime() - t0
  assert.same({ nil, "timeout" }, { a, b })
  assert.is_true(took >= secs - 0.001 and took < secs + 1, "took " .. took)
end

describe("socket.queue", function()
  it("passes values between tasks in order, waiters served first come first", function()
    local q = socket.queue()
    local got = {}
    for i = 1, 3 do
      socket.spawn(function()
        local v = q:get(LIMIT)
        got[#got + 1] = i .. ":" .. v
      end)
    end
    socket.spawn(function()
      for _, v in ipairs({ "a", "b", "c", "d" }) do assert.is_true(q:put(v)) end
    end)
    assert.is_true(run())
    assert.same({ "1:a", "2:b", "3:c" }, got)
    assert.equal(1, q:len())
    assert.equal(1, #q)
    assert.equal("d", q:get())
  end)

  it("works between a task and code outside tasks, both ways", function()
    local q, back = socket.queue(), socket.queue()
    socket.spawn(function()
      local v = q:get(LIMIT)
      back:put(v * 2)
    end)
    assert.is_true(q:put(21))          -- the task waits: handed over at once
    assert.equal(42, back:get(LIMIT))  -- turns the loop until the task puts
    assert.is_true(run())
  end)

  it("a bounded queue makes put wait for room, and a get lets the first putter in", function()
    local q = socket.queue(2)
    local log = {}
    socket.spawn(function()
      for i = 1, 5 do assert(q:put(i, LIMIT)); log[#log + 1] = "put" .. i end
    end)
    socket.spawn(function()
      assert.equal(2, q:len())         -- the producer waits with 3
      for _ = 1, 5 do
        local v = q:get(LIMIT)
        log[#log + 1] = "got" .. v
      end
    end)
    assert.is_true(run())
    -- got4 waits: the producer, woken when got1 made room for 3, goes on;
    -- 4 goes straight to the waiting consumer, 5 into the queue.
    assert.same({ "put1", "put2", "got1", "got2", "got3", "put3", "put4", "put5", "got4", "got5" }, log)
  end)

  -- A put hands its value to the waiting getter before that task runs
  -- again.  coroutine.close of the getter in between used to lose the
  -- value: it must go back, in front, so that the order of items holds.
  it("a getter closed after a put handed it the value gives it back, in front", function()
    local q = socket.queue()
    local getter
    local closed = socket.spawn(function()
      getter = coroutine.running()
      return q:get(LIMIT)
    end)
    socket.spawn(function()
      assert.is_true(q:put("a"))       -- handed to the waiting getter
      assert.is_true(q:put("b"))
      coroutine.close(getter)
    end)
    assert.is_true(run())
    assert.same({ false, "cancelled" }, { closed:join() })
    assert.equal(2, q:len())
    assert.equal("a", q:get(0))
    assert.equal("b", q:get(0))
  end)

  it("a value given back goes to the next getter in line", function()
    local q = socket.queue()
    local getter
    socket.spawn(function()
      getter = coroutine.running()
      return q:get(LIMIT)
    end)
    local second = socket.spawn(function() return q:get(LIMIT) end)
    socket.spawn(function()
      assert.is_true(q:put("a"))
      coroutine.close(getter)
    end)
    assert.is_true(run())
    assert.same({ true, "a" }, { second:join() })
    assert.equal(0, q:len())
  end)

  -- Run setup, then wait (outside tasks) in pcall and print what it
  -- returned, then print check, in a child luasock whose setup may call
  -- interrupt(): Ctrl-C (SIGINT to itself).  A second task is spawned: the
  -- turn sees the Ctrl-C before it runs that one.  One Ctrl-C per
  -- process: the program's handler lets a second one end it, as lua.c
  -- does.
  local function after_ctrl_c(setup, wait, check)
    local r = support.run({ support.LUASOCK, "-e", ([[
local socket = require "socket"
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("n")
f:close()
local function interrupt() io.popen("kill -INT " .. pid):close() end
%s
socket.spawn(function() end)
print(pcall(function() return %s end))
print(%s)
]]):format(setup, wait, check) },
      { stderr = "null", limit = 20 })
    return r.out
  end

  -- Code outside tasks (the REPL) stopped by Ctrl-C just after a task
  -- handed it the value it waited for lost that value: get raises
  -- "interrupted!", so the value must stay in the queue, and a lock
  -- handed over must not stay held.
  it("Ctrl-C in an outside get or acquire gives back what a task just handed over", function()
    assert.equal("false\tinterrupted!\n1\tkept\n", after_ctrl_c([[
local q = socket.queue()
socket.spawn(function() q:put("kept"); interrupt() end)]], "q:get()", "q:len(), q:get(0)"))
    assert.equal("false\tinterrupted!\nfalse\n", after_ctrl_c([[
local l = socket.lock()
l:acquire()
socket.spawn(function() l:release(); interrupt() end)]], "l:acquire()", "l:locked()"))
  end)

  -- An outside put stopped by Ctrl-C after a getter had taken its value
  -- raised "interrupted!": the caller could not know the value was
  -- delivered.  As a Python call that completed returns before
  -- KeyboardInterrupt, the put returns true and the Ctrl-C raises at the
  -- next wait.
  it("Ctrl-C in an outside put whose value a task took: true, then the next wait raises", function()
    assert.equal("true\ttrue\n1\tsecond\nfalse\tinterrupted!\n", after_ctrl_c([[
local q = socket.queue(1)
q:put("first")
socket.spawn(function() q:get(); interrupt() end)]], "q:put('second')",
      "q:len(), q:get(0)); print(pcall(socket.sleep, 10)"))
  end)

  -- An outside wait told Ctrl-C from other errors raised while the loop
  -- turned by the text: a script's error that ended in "interrupted!"
  -- (here from its debug hook, after a getter took the put's value) was
  -- taken for Ctrl-C: the put returned true and the next wait raised an
  -- "interrupted!" that nobody sent.  Ctrl-C now marks the errors it
  -- raises; the script's error raises as it came, whatever it says.
  it("a script's error ending in 'interrupted!' during an outside put is no Ctrl-C", function()
    local r = support.run({ support.LUASOCK, "-e", [[
local socket = require "socket"
local q = socket.queue(1)
q:put("first")
local taken = false
socket.spawn(function() q:get(); taken = true end)
debug.sethook(function()   -- at the next return on the main thread, in the turn
  if taken then
    debug.sethook()
    error("job interrupted!", 0)
  end
end, "r")
print(pcall(q.put, q, "second"))
print(q:len(), q:get(0))
print(pcall(socket.sleep, 0))
]] }, { stderr = "out", limit = 20 })
    assert.equal("false\tjob interrupted!\n1\tsecond\ntrue\ttrue\n", r.out)
  end)

  -- Ctrl-C while an outside wait in a queue slept on alone (no task to
  -- turn the loop) left the waiter's box, the value put, in the registry
  -- until the next outside wait.  The SIGINT comes once the kernel shows
  -- the process asleep in poll (not epoll: no task, no loop).
  it("Ctrl-C in an outside put with no task lets its value go", function()
    local r = support.run({ support.LUASOCK, "-e", [[
local socket = require "socket"
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("n")
f:close()
local q = socket.queue(1)
q:put(1)
local weak = setmetatable({}, { __mode = "v" })
local function put_one()   -- the value is on this call's stack alone
  local v = {}
  weak[1] = v
  return q:put(v, 10)
end
local killer = io.popen(("while :; do case $(cat /proc/%d/wchan) in ep_poll*) ;; *poll*) break;; esac; "
                         .. "sleep 0.01; done; kill -INT %d"):format(pid, pid))
print(pcall(put_one))
killer:close()
collectgarbage(); collectgarbage()
print(weak[1] == nil)
]] }, { stderr = "null", limit = 20 })
    assert.matches("^false\t.*interrupted!\ntrue\n$", r.out)
  end)

  it("times out on get and on put, inside and outside tasks", function()
    local q = socket.queue(1)
    times_out(0.05, function() return q:get(0.05) end)
    assert.same({ nil, "timeout" }, { q:get(0) })
    assert.is_true(q:put("x"))
    times_out(0.05, function() return q:put("y", 0.05) end)
    socket.spawn(function()
      times_out(0.05, function() return q:put("y", 0.05) end)
      assert.equal("x", q:get())
      times_out(0.05, function() return q:get(0.05) end)
    end)
    assert.is_true(run())
    assert.equal(0, q:len())
  end)

  it("close wakes getters and putters with nil, \"closed\"; items left can still be taken", function()
    local q, full = socket.queue(), socket.queue(1)
    full:put(1)
    local res = {}
    socket.spawn(function() res.get = { q:get(LIMIT) } end)
    socket.spawn(function() res.put = { full:put(2, LIMIT) } end)
    socket.spawn(function() q:close(); full:close() end)
    assert.is_true(run())
    assert.same({ nil, "closed" }, res.get)
    assert.same({ nil, "closed" }, res.put)
    assert.same({ nil, "closed" }, { full:put(3) })
    assert.equal(1, full:get())
    assert.same({ nil, "closed" }, { full:get() })
    assert.matches("^queue %(0 items, closed%)$", tostring(full))
  end)

  it("a getter cancelled while it waits takes nothing: the next one gets the value", function()
    local q = socket.queue()
    local second
    local first = socket.spawn(function() q:get(LIMIT); error("not reached") end)
    socket.spawn(function() second = q:get(LIMIT) end)
    socket.spawn(function() first:cancel(); q:put("v") end)
    assert.is_true(run())
    assert.equal("v", second)
    assert.equal("cancelled", first:status())
  end)

  it("a putter cancelled while it waits adds nothing", function()
    local q = socket.queue(1)
    q:put("kept")
    local p = socket.spawn(function() q:put("dropped", LIMIT) end)
    socket.spawn(function() p:cancel() end)
    assert.is_true(run())
    assert.equal(1, q:len())
    assert.equal("kept", q:get())
    assert.same({ nil, "timeout" }, { q:get(0) })
  end)

  it("raises on misuse", function()
    local q = socket.queue()
    assert.has_error(function() q:put(nil) end, "bad argument #1 to 'put' (value expected (a queue holds no nil))")
    assert.has_error(function() q:get(-1) end, "bad argument #1 to 'get' (timeout must be non-negative)")
    assert.has_error(function() socket.queue(-1) end)
    assert.has_error(function() socket.queue("x") end)
    assert.has_error(function() q.get(socket.event()) end)
  end)

  it("10,000 tasks pass 1,000,000 values through queues without growing memory", function()
    local NQ, PAIRS, EACH = 100, 50, 200       -- 100 queues, 5,000 producers, 5,000 consumers
    local queues, received, samples = {}, 0, {}
    for i = 1, NQ do queues[i] = socket.queue(8) end
    for i = 1, NQ * PAIRS do
      local q = queues[i % NQ + 1]
      socket.spawn(function() for v = 1, EACH do q:put(v) end end)
      socket.spawn(function()
        for _ = 1, EACH do
          q:get()
          received = received + 1
          if received % 100000 == 0 then
            collectgarbage()
            samples[#samples + 1] = collectgarbage("count")
          end
        end
      end)
    end
    local t0 = socket.gettime()
    assert.is_true(socket.run())
    local took = socket.gettime() - t0
    assert.equal(NQ * PAIRS * EACH, received)
    assert.equal(10, #samples)
    -- After the first tenth every task exists and waits: memory stays put
    -- (the tasks end near the close, so the last samples only shrink).
    local growth = math.max(table.unpack(samples, 2)) - samples[2]
    assert.is_true(growth < 512, ("grew by %.0f KiB"):format(growth))
    print(("(%d values in %.2f s)"):format(received, took))
  end)
end)

describe("socket.event", function()
  it("wakes every waiter in order when set; wait returns at once while set", function()
    local ev, log = socket.event(), {}
    for i = 1, 3 do socket.spawn(function() assert(ev:wait(LIMIT)); log[#log + 1] = i end) end
    socket.spawn(function() assert.is_false(ev:is_set()); ev:set() end)
    assert.is_true(run())
    assert.same({ 1, 2, 3 }, log)
    assert.is_true(ev:is_set())
    assert.is_true(ev:wait())
    ev:clear()
    assert.is_false(ev:is_set())
    assert.equal("event (clear)", tostring(ev))
  end)

  it("outside a task waits while a task sets it, and times out", function()
    local ev = socket.event()
    times_out(0.05, function() return ev:wait(0.05) end)
    socket.spawn(function() socket.sleep(0.01); ev:set() end)
    assert.is_true(ev:wait(LIMIT))
    ev:clear()
    socket.spawn(function() times_out(0.05, function() return ev:wait(0.05) end) end)
    assert.is_true(run())
  end)
end)

describe("socket.lock and socket.semaphore", function()
  it("a lock is held by one task at a time, handed over in order; <close> releases", function()
    local l, log = socket.lock(), {}
    for i = 1, 3 do
      socket.spawn(function()
        local held <close> = assert(l:acquire(LIMIT))
        log[#log + 1] = "in" .. i
        socket.sleep(0.001)
        log[#log + 1] = "out" .. i
      end)
    end
    assert.is_true(run())
    assert.same({ "in1", "out1", "in2", "out2", "in3", "out3" }, log)
    assert.is_false(l:locked())
    assert.has_error(function() l:release() end, "release of a lock that is not held")
  end)

  it("acquire times out, in and out of tasks; the main thread and a task share a lock", function()
    local l = socket.lock()
    assert.equal(l, l:acquire())
    assert.is_true(l:locked())
    times_out(0.05, function() return l:acquire(0.05) end)
    local got, timed_out = nil, socket.event()
    socket.spawn(function()
      times_out(0.02, function() return l:acquire(0.02) end)
      timed_out:set()
      got = l:acquire(LIMIT)
      l:release()
    end)
    -- The task timed out once; the round of the loop that woke us ran it
    -- on to its second acquire, where it waits.
    assert.is_true(timed_out:wait(LIMIT))
    l:release()                        -- hands it over
    assert.is_true(run())
    assert.equal(l, got)
    assert.is_false(l:locked())
  end)

  it("a task cancelled while it waits for a lock does not get it", function()
    local l = socket.lock()
    l:acquire()
    local waiter = socket.spawn(function() l:acquire(LIMIT); error("not reached") end)
    local next_one = socket.spawn(function() return l:acquire(LIMIT) end)
    socket.spawn(function() waiter:cancel(); l:release() end)
    assert.is_true(run())
    assert.same({ true, l }, { next_one:join() })
    assert.is_true(l:locked())
  end)

  -- release hands the lock to the first waiter before it runs again;
  -- coroutine.close of that task in between used to keep the lock held
  -- for good.
  it("a waiter closed after release handed it the lock passes the lock on", function()
    local l = socket.lock()
    l:acquire()
    local waiter
    socket.spawn(function()
      waiter = coroutine.running()
      return l:acquire(LIMIT)
    end)
    socket.spawn(function()
      l:release()                      -- handed to the waiter
      coroutine.close(waiter)
    end)
    assert.is_true(run())
    assert.is_false(l:locked())
    local s = socket.semaphore(0)
    local next_one
    socket.spawn(function()
      waiter = coroutine.running()
      return s:acquire(LIMIT)
    end)
    next_one = socket.spawn(function() return s:acquire(LIMIT) end)
    socket.spawn(function()
      s:release()
      coroutine.close(waiter)
    end)
    assert.is_true(run())
    assert.same({ true, s }, { next_one:join() })
    assert.equal(0, s:value())
  end)

  it("a semaphore lets n in at once", function()
    local s, inside, most = socket.semaphore(2), 0, 0
    for _ = 1, 5 do
      socket.spawn(function()
        local g <close> = assert(s:acquire(LIMIT))
        inside = inside + 1
        most = math.max(most, inside)
        socket.sleep(0.001)
        inside = inside - 1
      end)
    end
    assert.is_true(run())
    assert.equal(2, most)
    assert.equal(2, s:value())
    assert.equal("semaphore (2 free)", tostring(s))
    assert.has_error(function() socket.semaphore(-1) end)
    local zero = socket.semaphore(0)
    times_out(0.02, function() return zero:acquire(0.02) end)
  end)
end)

describe("socket.signals", function()
  local function pid()
    local f = assert(io.open("/proc/self/stat"))
    local n = f:read("n")
    f:close()
    return n
  end
  local function kill(sig) assert(os.execute(("kill -%s %d"):format(sig, pid()))) end
  -- Whether sig (a number) is blocked in this thread.
  local function blocked(signo)
    for line in io.lines("/proc/thread-self/status") do
      local mask = line:match("^SigBlk:%s*(%x+)")
      if mask then return (tonumber(mask:sub(-16), 16) >> (signo - 1)) & 1 == 1 end
    end
  end

  it("a task waits for a signal while the others run; one sent between waits is kept", function()
    local sig <close> = assert(socket.signals("USR1", "SIGUSR2"))
    assert.equal("signals (USR1, USR2)", tostring(sig))
    local got = {}
    socket.spawn(function() got[1] = sig:wait(LIMIT) end)
    socket.spawn(function() kill("USR2") end)
    assert.is_true(run())
    assert.same({ "USR2" }, got)
    kill("USR1")                       -- nobody waits yet
    assert.equal("USR1", sig:wait(0))
    times_out(0.05, function() return sig:wait(0.05) end)
  end)

  it("close restores the signal mask it found", function()
    assert.is_false(blocked(10))       -- SIGUSR1
    local sig = socket.signals("USR1")
    assert.is_true(blocked(10))
    assert.is_true(sig:close())
    assert.is_false(blocked(10))
    assert.equal("signals (closed)", tostring(sig))
    assert.has_error(function() sig:wait() end, "attempt to use closed signals")
    assert.has_error(function() socket.signals("NOPE") end, "bad argument #1 to 'signals' (unknown signal 'NOPE')")
    assert.has_error(function() socket.signals() end)
  end)

  -- Two objects for one signal share its block: closing the one that
  -- blocked it used to unblock it while the other still waited for it
  -- (the signal then ran its default action: death by SIGUSR1).
  it("a signal stays blocked while any object for it is open", function()
    assert.is_false(blocked(10))
    local first = socket.signals("USR1")
    local second <close> = socket.signals("USR1", "USR2")
    assert.is_true(first:close())
    assert.is_true(blocked(10))
    kill("USR1")
    assert.equal("USR1", second:wait(0))
    local third = socket.signals("USR1")
    second:close()
    assert.is_true(blocked(10))
    third:close()
    assert.is_false(blocked(10))
    assert.is_false(blocked(12))       -- SIGUSR2
  end)

  it("Ctrl-C (SIGINT) stays an interruption unless a script asks for INT", function()
    local c = support.start({ support.LUASOCK, "-e", [[
io.stdout:setvbuf("line")
local socket = require "socket"
local sig = socket.signals("INT")
print("asked")
print(sig:wait(5))
sig:close()
print(pcall(function() print("closed") socket.sleep(5) end))
]] }, { stdin = "null" })
    assert.equal("asked", c:line())
    assert(os.execute("kill -INT " .. c.pid))
    assert.equal("INT", c:line())
    assert.equal("closed", c:line())
    assert(os.execute("kill -INT " .. c.pid))
    assert.matches("^false\t.*interrupted!", c:line())
    assert.equal(0, c:wait())
  end)
end)

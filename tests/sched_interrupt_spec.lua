-- sched_interrupt_spec: Ctrl-C (SIGINT) ends a child luasock with
-- "interrupted!" and status 1, wherever it waits or spins: in run, in a
-- wait outside run, in a task that never yields.
local socket = require "socket"
local support = require "tests.support"

describe("Ctrl-C", function()
  -- Start script in a child, wait for its "ready", send SIGINT: the child
  -- must end with status 1 and "interrupted!" on stderr (as lua5.4 does),
  -- not print what run returned.
  local function interrupt(script)
    local c = support.start({ support.LUASOCK, support.temp_file(script) }, { stdin = "null" })
    assert.equal("ready", c:line())
    assert(os.execute("kill -INT " .. c.pid))
    assert.equal(1, c:wait(3))
    assert.matches("interrupted!", c:stderr())
    assert.equal("", c:rest())
  end

  it("interrupts run while it waits", function()
    interrupt([[
local socket = require "socket"
socket.spawn(function() print("ready"); io.stdout:flush(); socket.sleep(30) end)
print(socket.run())
]])
  end)

  it("interrupts a wait outside run while the loop turns", function()
    interrupt([[
local socket = require "socket"
socket.spawn(function() print("ready"); io.stdout:flush(); socket.sleep(30) end)
local a, b = socket.socketpair()
print(a:recv(10))
]])
  end)

  it("interrupts a task spinning while the main thread waits, and the wait", function()
    interrupt([[
local socket = require "socket"
socket.spawn(function() print("ready"); io.stdout:flush(); while true do end end)
socket.sleep(30)
print("slept")
]])
  end)

  it("interrupts a task that never yields, and run with it", function()
    interrupt([[
local socket = require "socket"
socket.spawn(function() socket.sleep(30) end)
socket.spawn(function()
  print("ready"); io.stdout:flush()
  local n = 0
  while true do n = n + 1 end
end)
print(socket.run())
]])
  end)
end)

-- tests/helpers.lua: loaded by busted (--helper) before every spec file.
-- When a test ends, what it deferred with tests/support.lua is cleaned up
-- (children killed and reaped, temporary files removed), and then the test
-- is audited: the count of /proc/self/fd after it must equal the count
-- before it (no descriptor leaked), and no task may be left that has not
-- ended (one still waiting would run in a later test's socket.run).  Tasks
-- a failed test left (a ticker that never stops) are cancelled, so that
-- the next test's socket.run does not run them for ever.
local busted = require "busted"
local support = require "tests.support"

-- The loop makes its epoll set and eventfd at the first wait that needs
-- them, and keeps them: make them now (a task parks on a descriptor), so
-- that the first test that waits is not taken for a leak.
do
  local socket = require "socket"
  local a, b = socket.socketpair()
  socket.spawn(function() a:recv(1) end)
  assert(socket.run(function() b:sendall("x") end))
  a:close()
  b:close()
end

local before
busted.subscribe({ "test", "start" }, function()
  support.test_started()
  collectgarbage()
  before = support.count_fds()
  return nil, true
end)
busted.subscribe({ "test", "end" }, function(element, parent, status)
  support.test_ended()
  collectgarbage()
  collectgarbage()
  local after = support.count_fds()
  if status == "success" and after ~= before then
    error(("test '%s' leaked %d file descriptor(s)"):format(element.name, after - before))
  end
  local tasks = support.tasks_left()
  support.end_tasks()
  if status == "success" and tasks > 0 then
    error(("test '%s' left %d task(s) that have not ended"):format(element.name, tasks))
  end
  return nil, true
end)
busted.subscribe({ "file", "end" }, function()
  support.file_ended()
  return nil, true
end)

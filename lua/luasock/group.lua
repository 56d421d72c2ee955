-- luasock.group: socket.group(), tasks that start and end together,
-- written over Task handles and an event.  Added to the socket table by
-- luaopen_socket.
--
--   local g <close> = socket.group()
--   g:spawn(fn, ...)            -- a task of the group; returns its Task
--   g:wait([timeout])           -- true | false, err | nil, "timeout"
--
-- Each task of the group runs under a to-be-closed member record, whose
-- __close runs however the task ends (return, error, cancel): it counts
-- the task out, and on a failure records it and cancels the others.  So
-- the first failure stops the group even while nobody waits on it, and
-- leaving the group's scope cancels whatever still runs: no task outlives
-- the code that started it.
return function(socket)
  local Group = { __name = "luasock.group" }
  Group.__index = Group

  -- A member's end, from its to-be-closed record.
  local Member = {}
  Member.__close = function(m, err)
    local g = m.group
    g.running = g.running - 1
    if g.failure == nil and (err ~= nil or m.task:status() == "failed") then
      g.failure = m.task
      g:cancel()
    end
    g.ended:set()
  end

  local function member(m, fn, ...)
    local _ <close> = m
    return fn(...)
  end

  -- socket.group() -> an empty group.
  function socket.group()
    return setmetatable({ tasks = {}, running = 0, ended = socket.event() }, Group)
  end

  local function check(g)
    if getmetatable(g) ~= Group then
      error("bad argument #1 (luasock.group expected, got " .. (type(g) == "table" and "table" or type(g)) .. ")", 3)
    end
  end

  -- g:spawn(fn, ...) -> the Task running fn(...) in the group.
  function Group:spawn(fn, ...)
    check(self)
    if type(fn) ~= "function" then
      error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
    end
    if self.closed then error("attempt to spawn in a closed group", 2) end
    local m = setmetatable({ group = self }, Member)
    local t = socket.spawn(member, m, fn, ...)
    m.task = t
    self.tasks[#self.tasks + 1] = t
    self.running = self.running + 1
    return t
  end

  -- g:wait([timeout]) -> true once every task ended cleanly; false and the
  -- error of the first that failed (the others were cancelled); nil,
  -- "timeout" (the tasks go on).
  function Group:wait(timeout)
    check(self)
    if timeout ~= nil and (type(timeout) ~= "number" or not (timeout >= 0)) then
      error("bad argument #1 to 'wait' (timeout must be non-negative)", 2)
    end
    local deadline = timeout and socket.gettime() + timeout
    while true do
      if self.failure then return false, select(2, self.failure:join()) end
      if self.running == 0 then return true end
      self.ended:clear()
      local left = deadline and math.max(0, deadline - socket.gettime())
      local ok, err = self.ended:wait(left)
      if not ok and not self.failure and self.running > 0 then return nil, err end
    end
  end

  -- g:cancel() -> true: cancels every task of the group still running.
  function Group:cancel()
    check(self)
    for _, t in ipairs(self.tasks) do t:cancel() end
    return true
  end

  -- Leaving the scope of `local g <close>`: cancel what still runs; the
  -- group takes no new task.
  function Group:__close()
    self.closed = true
    self:cancel()
  end

  function Group:__tostring()
    return ("group (%d tasks, %d running)"):format(#self.tasks, self.running)
  end
end

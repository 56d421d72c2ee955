-- sched_error_spec: a task that fails is reported on stderr with a
-- traceback, its <close> variables are closed, the other tasks go on and
-- socket.run returns the first error; odd error objects.  Each case runs
-- in a child luasock, whose stderr the test reads.
local socket = require "socket"
local support = require "tests.support"

local run = support.run_tasks   -- socket.run, failing after 4 s

describe("a task that fails", function()
  it("is reported on stderr with a traceback; the others go on; run returns the first error", function()
    local script = support.temp_file([[
local socket = require "socket"
local log = {}
socket.spawn(function()
  for i = 1, 3 do log[#log + 1] = "a" .. i; socket.sleep(0.01) end
end)
socket.spawn(function()
  socket.sleep(0.005)
  local function deep_inside() error("first failure") end
  deep_inside()
end)
socket.spawn(function() socket.sleep(0.015); error("second failure") end)
local ok, err = socket.run()
print(ok, err, table.concat(log, ","))
]])
    local c = support.start({ support.LUASOCK, script }, { stdin = "null" })
    local line = assert(c:line())
    assert.matches("^false\t[^\t]*: first failure\ta1,a2,a3$", line)
    assert.equal(0, c:wait())
    local err = c:stderr()
    assert.matches("first failure", err)
    assert.matches("second failure", err)
    assert.matches("stack traceback:", err)
    assert.matches("deep_inside", err)
  end)

  it("has its <close> variables closed", function()
    local closed = {}
    local s
    local ok, err = run(function()
      s = assert(socket.socket())
      local s2 <close> = s
      local obj <close> = setmetatable({}, { __close = function(_, e) closed[#closed + 1] = e end })
      error("boom", 0)
    end)
    assert.is_false(ok)
    assert.equal("boom", err)
    assert.same({ "boom" }, closed)
    assert.equal(-1, s:fileno())
  end)

  it("keeps a non-string error object as it is", function()
    local e = {}
    local ok, err = run(function() error(e) end)
    assert.is_false(ok)
    assert.equal(e, err)
  end)

  -- Story: the report called the error object's
  -- __tostring unprotected, before the task was let go.  One that raised
  -- escaped from socket.run, and the dead task stayed counted: every later
  -- run waited for ever.  The task is now let go first and the text built
  -- in a protected call (falling back to the object's type).
  it("whose error's __tostring raises is reported, and run works again", function()
    local c = support.start({ support.LUASOCK, "-e", [[
local socket = require "socket"
local e = setmetatable({}, { __tostring = function() error("boom in __tostring") end })
socket.spawn(function() error(e) end)
local ok, res, err = pcall(socket.run)
print(ok, res, rawequal(err, e))
print(socket.run(function() print("second task runs") end))
]] }, { stdin = "null" })
    assert.equal("true\tfalse\ttrue", c:line())
    assert.equal("second task runs", c:line())
    assert.equal("true", c:line())
    assert.equal(0, c:wait())
    local err = c:stderr()
    assert.matches("error in task: %(error object is a table value%)\nstack traceback:", err)
  end)
end)

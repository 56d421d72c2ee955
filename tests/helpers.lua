-- tests/helpers.lua: loaded by busted (--helper) before every spec file.
-- Every test is checked for leaked file descriptors: the count of
-- /proc/self/fd after the test must equal the count before it.
local busted = require "busted"
local lfs = require "lfs"

local function count_fds()
  local n = 0
  for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
  return n
end

local before
busted.subscribe({ "test", "start" }, function()
  collectgarbage()
  before = count_fds()
  return nil, true
end)
busted.subscribe({ "test", "end" }, function(element, parent, status)
  collectgarbage()
  collectgarbage()
  local after = count_fds()
  if status == "success" and after ~= before then
    error(("test '%s' leaked %d file descriptor(s)"):format(element.name, after - before))
  end
  return nil, true
end)

-- scripts/fanout.lua: ask several servers the same thing at once and take
-- the first answer; the other attempts are cancelled.
--
--   luasock scripts/fanout.lua timeout message host:port [host:port...]
--
-- Sends message and a newline to every server and prints the first line
-- that comes back as "ADDRESS answered: line", then how many attempts were
-- cancelled.  The whole race has one deadline (socket.timeout): past it,
-- "no answer within N s" and status 1.  A server that cannot be reached
-- or closes without answering just drops out of the race.
local socket = require "socket"

local timeout, message = tonumber(arg[1]), arg[2]
if not (timeout and message and arg[3]) then
  io.stderr:write("usage: fanout.lua timeout message host:port [host:port...]\n")
  os.exit(2)
end
local servers = {}
for i = 3, #arg do
  local host, port = arg[i]:match("^%[?([^%]]*)%]?:(%d+)$")
  if not host then
    io.stderr:write("fanout.lua: not host:port: ", arg[i], "\n")
    os.exit(2)
  end
  servers[#servers + 1] = { host, tonumber(port) }
end

-- Ask one server; put its answer in the answers queue.
local function ask(address, answers)
  local conn = socket.create_connection(address)
  if not conn then return end
  local _ <close> = conn
  if not conn:sendall(message .. "\n") then return end
  local line = conn:makefile("r"):read("l")
  if line then answers:put(("%s answered: %s"):format(address[1] .. ":" .. address[2], line)) end
end

-- Every attempt in one group: leaving the function (first answer, or the
-- deadline) cancels those still running.
local function race()
  local answers = socket.queue()
  local attempts <close> = socket.group()
  for _, address in ipairs(servers) do attempts:spawn(ask, address, answers) end
  socket.spawn(function()          -- every attempt dropped out: no answer
    attempts:wait()
    answers:close()
  end)
  local first = answers:get()
  local cancelled = 0
  for _, t in ipairs(attempts.tasks) do
    if t:status() ~= "done" and t:status() ~= "failed" then cancelled = cancelled + 1 end
  end
  return first, cancelled
end

local first, cancelled
socket.run(function() first, cancelled = socket.timeout(timeout, race) end)
if not first then
  print(cancelled == "timeout" and ("no answer within %g s"):format(timeout) or "no answer")
  os.exit(1)
end
print(first)
print(("%d other attempt(s) cancelled"):format(cancelled))

-- scripts/client.lua: the documented TCP client.
--
--   luasock scripts/client.lua [host] [port]      (defaults 127.0.0.1 8001)
--
-- Prompts "Please input msg:", sends each line typed (without its
-- newline), prints the server's reply; ends with status 0 at end of input,
-- 1 when it cannot connect or the server hangs up.
local socket = require "socket"

local host, port = arg[1] or "127.0.0.1", tonumber(arg[2] or 8001)

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local s = assert(socket.socket(family, socket.SOCK_STREAM))
local ok, err = s:connect({host, port})
if not ok then                               -- no server there: say where, no traceback
  local where = family == socket.AF_INET6 and ("[%s]:%s") or "%s:%s"
  io.stderr:write(("client.lua: cannot connect to " .. where .. ": %s\n"):format(host, port, err))
  os.exit(1)
end

while true do
  io.write("Please input msg:")
  io.flush()
  local line = io.read("l")
  if not line then break end                 -- end of input
  if line ~= "" then                         -- sending "" would wait forever for a reply
    assert(s:sendall(line))
    local reply = assert(s:recv(1024))
    if reply == "" then
      io.stderr:write("server closed the connection\n")
      os.exit(1)
    end
    print(reply)
  end
end
io.write("\n")
s:close()

-- scripts/portcheck.lua: which TCP ports of the loopback are open.
--
--   luasock scripts/portcheck.lua [host] [first] [last] [timeout]
--                                 (defaults 127.0.0.1 8000 8010 0.5)
--
-- Tries to connect to each port with connect_ex and a timeout and prints
-- "PORT open", "PORT closed" (refused) or "PORT filtered (ERRNO)".
local socket = require "socket"

local host = arg[1] or "127.0.0.1"
local first = tonumber(arg[2] or 8000)
local last = tonumber(arg[3] or first + 10)
local timeout = tonumber(arg[4] or 0.5)
assert(host == "::1" or host == "localhost" or host:match("^127%.%d+%.%d+%.%d+$"),
  "portcheck.lua checks the loopback only")
io.stdout:setvbuf("line")

local errno_name = {}   -- socket.errno backwards: 111 -> "ECONNREFUSED"
for name, code in pairs(socket.errno) do errno_name[code] = name end

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local open, closed = 0, 0
for port = first, last do
  local s <close> = assert(socket.socket(family, socket.SOCK_STREAM))
  s:settimeout(timeout)
  local code = s:connect_ex({host, port})     -- 0 or an errno, never raises
  if code == 0 then
    open = open + 1
    print(port .. " open")
  elseif code == socket.errno.ECONNREFUSED then
    closed = closed + 1
    print(port .. " closed")
  else
    print(("%d filtered (%s)"):format(port, errno_name[code] or code))
  end
end
print(("%d open, %d closed, %d filtered"):format(open, closed, last - first + 1 - open - closed))

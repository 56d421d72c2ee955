-- scripts/udp_client.lua: the client of udp_server.lua.
--
--   luasock scripts/udp_client.lua [host] [port]  (defaults 127.0.0.1 8001)
--
-- Sends each line of input as one datagram and prints the answer, or why
-- none came (no answer within 2 s, or nobody listening).
local socket = require "socket"

local host, port = arg[1] or "127.0.0.1", tonumber(arg[2] or 8001)
io.stdout:setvbuf("line")

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local s = assert(socket.socket(family, socket.SOCK_DGRAM))
s:settimeout(2)
-- A connected datagram socket: send and recv need no address, answers
-- from anyone else are dropped, and "nobody listening" comes back as
-- ECONNREFUSED.
assert(s:connect({host, port}))

for line in io.lines() do
  assert(s:send(line))
  local reply, err = s:recv(65535)
  print(reply or ("no answer: " .. err))
end
s:close()

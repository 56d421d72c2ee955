-- scripts/udp_server.lua: a datagram echo server.
--
--   luasock scripts/udp_server.lua [host] [port]  (defaults 127.0.0.1 8001)
--
-- Prints where it listens (port 0: the real port), then each datagram with
-- its sender (one line: a final newline is not printed twice), and sends
-- every datagram back to where it came from.
local socket = require "socket"

local host, port = arg[1] or "127.0.0.1", tonumber(arg[2] or 8001)
io.stdout:setvbuf("line")

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local s = assert(socket.socket(family, socket.SOCK_DGRAM))
assert(s:bind({host, port}))
print("UDP server at: " .. tostring(s:getsockname()))

while true do
  local data, addr = assert(s:recvfrom(65535))   -- one whole datagram
  print(tostring(addr) .. ": " .. data:gsub("\r?\n$", ""))   -- nc sends the newline
  s:sendto(data, addr)
end

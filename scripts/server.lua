-- scripts/server.lua: the documented TCP server.
--
--   luasock scripts/server.lua [host] [port]      (defaults 127.0.0.1 8001)
--
-- Prints where it listens (port 0 picks a free port: the line shows the
-- real one), then "Connected by  ADDRESS" for each client and every
-- message a client sends, and answers each message with
-- "server received you message.".
local socket = require "socket"

local host, port = arg[1] or "127.0.0.1", tonumber(arg[2] or 8001)
io.stdout:setvbuf("line")   -- one line at a time, also into a pipe

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local s = assert(socket.socket(family, socket.SOCK_STREAM))
assert(s:setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, true))
assert(s:bind({host, port}))
assert(s:listen(5))
print("Server start at: " .. tostring(s:getsockname()))
print("wait for connection...")

while true do
  local conn, addr = assert(s:accept())
  print("Connected by  " .. tostring(addr))
  while true do
    local data = conn:recv(1024)
    if not data or data == "" then break end   -- the client left (or failed)
    print((data:gsub("\r?\n$", "")))
    conn:sendall("server received you message.")
  end
  conn:close()
end

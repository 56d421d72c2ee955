-- scripts/chat.lua: a line-based chat room, one task per client.
--
--   luasock scripts/chat.lua [host] [port]        (defaults 127.0.0.1 8001)
--
-- Every line a client sends goes to all the other clients as
-- "ADDRESS: line"; joins and departures are announced as "* ADDRESS joined"
-- and "* ADDRESS left".  Try it with `nc 127.0.0.1 8001` in a few terminals.
-- The server logs the same events on its standard output.
local socket = require "socket"

local host, port = arg[1] or "127.0.0.1", tonumber(arg[2] or 8001)
io.stdout:setvbuf("line")

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local s = assert(socket.socket(family, socket.SOCK_STREAM))
assert(s:setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, true))
assert(s:bind({host, port}))
assert(s:listen())
print("Chat server at: " .. tostring(s:getsockname()))

local clients = {}   -- the connected sockets, as keys

-- Send text to every client but from.  The list is copied first, since
-- clients may join or leave while sendall waits.  Naive: a client that
-- does not read holds up the sender; a bigger server gives each client
-- an outgoing queue and a writer task.
local function broadcast(from, text)
  local targets = {}
  for conn in pairs(clients) do
    if conn ~= from then targets[#targets + 1] = conn end
  end
  for _, conn in ipairs(targets) do
    if conn:fileno() >= 0 then conn:sendall(text) end
  end
end

local function chat(conn, name)
  clients[conn] = true
  print(name .. " joined")
  conn:sendall("* welcome, you are " .. name .. "\n")
  broadcast(conn, "* " .. name .. " joined\n")
  local input = conn:makefile("r")
  while true do
    local line = input:read("l")   -- nil at the end of the stream or on an error
    if not line then break end
    broadcast(conn, name .. ": " .. line:gsub("\r$", "") .. "\n")
  end
  clients[conn] = nil
  input:close()
  conn:close()
  print(name .. " left")
  broadcast(conn, "* " .. name .. " left\n")
end

socket.run(function()
  while true do
    local conn, addr = assert(s:accept())
    socket.spawn(chat, conn, tostring(addr))
  end
end)

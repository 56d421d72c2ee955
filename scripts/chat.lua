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
local s = assert(socket.create_server({host, port}, { family = family }))
print("Chat server at: " .. tostring(s:getsockname()))

local clients = {}   -- the connected sockets, as keys
local outbox = {}    -- socket -> texts waiting while a task writes to it

-- Send text to conn.  Only one task may wait to write on a socket at a
-- time, so a task that finds another one writing there leaves its text in
-- that socket's outbox; the writing task sends the outbox after its own
-- text, all of it at once.  A client with 10000 lines waiting is dropped.
local function deliver(conn, text)
  local queue = outbox[conn]
  if queue then                                -- another task is writing to conn
    queue[#queue + 1] = text
    if #queue > 10000 then conn:close() end    -- its task sees "closed" and leaves
    return
  end
  local pending = { text }
  while pending[1] and conn:fileno() >= 0 do
    outbox[conn] = {}                          -- collects lines while we send
    if not conn:sendall(table.concat(pending)) then break end
    pending = outbox[conn]
  end
  outbox[conn] = nil
end

-- Send text to every client but from.  The list is copied first, since
-- clients may join or leave meanwhile.  Naive: a client that does not read
-- holds up the sender; a bigger server gives each client a writer task.
local function broadcast(from, text)
  local targets = {}
  for conn in pairs(clients) do
    if conn ~= from then targets[#targets + 1] = conn end
  end
  for _, conn in ipairs(targets) do deliver(conn, text) end
end

local function chat(conn, name)
  clients[conn] = true
  print(name .. " joined")
  deliver(conn, "* welcome, you are " .. name .. "\n")
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
    local conn, addr = s:accept()   -- nil, err: that connection failed; go on
    if conn then socket.spawn(chat, conn, tostring(addr)) end
  end
end)

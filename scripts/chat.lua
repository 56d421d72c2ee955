-- scripts/chat.lua: a line-based chat room, one task per client.
--
--   luasock scripts/chat.lua [host] [port]        (defaults 127.0.0.1 8001)
--
-- Every line a client sends goes to all the other clients as
-- "ADDRESS: line"; joins and departures are announced as "* ADDRESS joined"
-- and "* ADDRESS left".  Try it with `nc 127.0.0.1 8001` in a few terminals.
-- The server logs the same events on its standard output.
--
-- Each client has an outgoing queue of up to 10000 lines and a writer
-- task that empties it.  A sender whose line finds a queue full waits for
-- room (a slow reader slows the talkers down, as TCP would); a client
-- whose queue stays full for 2 s does not read: it is dropped.
local socket = require "socket"

local host, port = arg[1] or "127.0.0.1", tonumber(arg[2] or 8001)
io.stdout:setvbuf("line")

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local s = assert(socket.create_server({host, port}, { family = family }))
print("Chat server at: " .. tostring(s:getsockname()))

local outbox = {}    -- socket -> the queue of texts its writer sends

-- Send what conn's queue holds until the queue is closed, the lines that
-- piled up meanwhile in one sendall.
local function writer(conn, queue)
  while true do
    local text = queue:get()
    if not text or conn:fileno() < 0 then break end   -- the client left or was dropped
    local batch = { text }
    while queue:len() > 0 do batch[#batch + 1] = queue:get() end
    if not conn:sendall(table.concat(batch)) then break end
  end
end

-- Queue text for conn.  A client that does not read is dropped: its
-- reading task then sees "closed" and leaves.
local function deliver(conn, text)
  local queue = outbox[conn]
  if queue and not queue:put(text, 2) and outbox[conn] == queue then
    conn:close()
    queue:close()
  end
end

-- Send text to every client but from.  The list is copied first, since
-- clients may join or leave while a delivery waits.
local function broadcast(from, text)
  local targets = {}
  for conn in pairs(outbox) do
    if conn ~= from then targets[#targets + 1] = conn end
  end
  for _, conn in ipairs(targets) do deliver(conn, text) end
end

local function chat(conn, name)
  local queue = socket.queue(10000)
  outbox[conn] = queue
  socket.spawn(writer, conn, queue)
  print(name .. " joined")
  deliver(conn, "* welcome, you are " .. name .. "\n")
  broadcast(conn, "* " .. name .. " joined\n")
  local input = conn:makefile("r")
  while true do
    local line = input:read("l")   -- nil at the end of the stream or on an error
    if not line then break end
    broadcast(conn, name .. ": " .. line:gsub("\r$", "") .. "\n")
  end
  outbox[conn] = nil
  queue:close()                    -- its writer ends
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

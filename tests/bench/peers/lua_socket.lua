-- tests/bench/peers/lua_socket.lua - peer: Lua 5.4 + LuaSocket, a
-- socket.select loop over every client (LuaSocket has no scheduler).
-- Usage: lua5.4 lua_socket.lua MODE PORT   (as py_asyncio.py)
-- select() is limited to FD_SETSIZE (1024) descriptors.
local socket = require "socket"

local REPLY = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
  .. "Content-Length: 13\r\n\r\nHello, World!"
local mode, port = arg[1], tonumber(arg[2])

local srv = assert(socket.bind("127.0.0.1", port, 1024))
srv:settimeout(0)
print("listening on 127.0.0.1:" .. select(2, srv:getsockname()))
io.stdout:flush()

local readers, writers = { srv }, {}
local pending, tails = {}, {}   -- per client: unsent bytes; unfinished request head

local function remove(list, c)
  for i = #list, 1, -1 do if list[i] == c then table.remove(list, i) end end
end

local function drop(c)
  remove(readers, c); remove(writers, c)
  pending[c], tails[c] = nil, nil
  c:close()
end

-- Send data; what the socket does not take waits for writability (and the
-- client is not read meanwhile).
local function send(c, data)
  local last, err, partial = c:send(data)
  if last then return end
  if err ~= "timeout" then return drop(c) end
  pending[c] = data:sub(partial + 1)
  remove(readers, c); writers[#writers + 1] = c
end

-- Read what came and answer it; drop the client at end of stream (after
-- answering what came with it) or on an error.
local function on_readable(c)
  local data, err, partial = c:receive(65536)
  data = data or partial
  if mode == "echo" then
    if #data > 0 then send(c, data) end
  else
    local buf, n, last = (tails[c] or "") .. data, 0, 0
    for e in buf:gmatch("\r\n\r\n()") do n, last = n + 1, e end
    tails[c] = buf:sub(last > 0 and last or 1)
    if n > 0 then send(c, REPLY:rep(n)) end
  end
  if err and err ~= "timeout" then drop(c) end
end

while true do
  local r, w = socket.select(readers, writers)
  for _, c in ipairs(w) do
    local data = pending[c]
    pending[c] = nil
    remove(writers, c); readers[#readers + 1] = c
    send(c, data)
  end
  for _, c in ipairs(r) do
    if c == srv then
      local con = srv:accept()
      while con do
        con:settimeout(0)
        readers[#readers + 1] = con
        con = srv:accept()
      end
    elseif pending[c] == nil then
      on_readable(c)
    end
  end
end

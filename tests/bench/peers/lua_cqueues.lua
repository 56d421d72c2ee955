-- tests/bench/peers/lua_cqueues.lua - peer: Lua 5.4 + cqueues, one
-- coroutine per connection (the style closest to luasock's tasks).
-- Usage: lua5.4 lua_cqueues.lua MODE PORT   (MODE echo or http, as in
-- py_asyncio.py; port 0 picks one and prints "listening on 127.0.0.1:PORT")
local cqueues = require "cqueues"
local socket = require "cqueues.socket"

local REPLY = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
  .. "Content-Length: 13\r\n\r\nHello, World!"
local mode, port = arg[1], tonumber(arg[2])

local cq = cqueues.new()
local srv = assert(socket.listen{host = "127.0.0.1", port = port, backlog = 1024})
local _, _, bound = srv:localname()
print("listening on 127.0.0.1:" .. bound)
io.stdout:flush()

local function serve(con)
  con:setmode("bn", "bn")   -- binary, no buffering: write goes out at once
  local tail = ""
  while true do
    local data = con:read("-65536")
    if not data then break end
    if mode == "echo" then
      if not con:write(data) then break end
    else
      local buf, n = tail .. data, 0
      local last = 0
      for e in buf:gmatch("\r\n\r\n()") do n, last = n + 1, e end
      tail = buf:sub(last > 0 and last or 1)
      if n > 0 and not con:write(REPLY:rep(n)) then break end
    end
  end
  con:close()
end

-- cqueues raises on a connection reset (the load generator resets its
-- connections when it is done): that ends one client, not the server.
cq:wrap(function()
  for con in srv:clients() do
    cq:wrap(function() pcall(serve, con); con:close() end)
  end
end)
assert(cq:loop())

-- tests/bench/echo.lua - the luasock side of the benchmark: a
-- task-per-connection echo server, written as a user would write it.
-- Usage: luasock tests/bench/echo.lua [port [bufsize]]
-- Binds 127.0.0.1 (port 0, the default, picks a free one), prints
-- "listening on 127.0.0.1:PORT" and serves until killed.
local socket = require "socket"

local port = tonumber(arg[1]) or 0
local bufsize = tonumber(arg[2]) or 65536

local server = assert(socket.create_server({"127.0.0.1", port}))
print("listening on " .. tostring(server:getsockname()))
io.stdout:flush()

-- One task per client: read what came, send it back, until the peer
-- goes away (end of stream or an error such as a reset).
local function echo(conn)
  while true do
    local data = conn:recv(bufsize)
    if not data or data == "" then break end
    if not conn:sendall(data) then break end
  end
  conn:close()
end

socket.run(function()
  while true do
    local conn = server:accept()
    if conn then socket.spawn(echo, conn) end
  end
end)

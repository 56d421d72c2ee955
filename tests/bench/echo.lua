-- tests/bench/echo.lua - the luasock side of the benchmark: a
-- task-per-connection echo server, written as a user would write it.
-- Usage: luasock tests/bench/echo.lua [port [bufsize [mode [workers]]]]
-- Binds 127.0.0.1 (port 0, the default, picks a free one), prints
-- "listening on 127.0.0.1:PORT" and serves until killed.  Mode "echo"
-- (the default) sends back every byte; "http" answers every request head
-- (ended by a blank line) with the benchmark's fixed 78-byte reply,
-- keep-alive, as the other HTTP peers do (tests/bench/peers/).  With
-- workers (default 1), that many processes share the listening socket
-- (socket.run{workers = N}) and each prints "worker ready" once it serves.
local socket = require "socket"

local port = tonumber(arg[1]) or 0
local bufsize = tonumber(arg[2]) or 65536
local mode = arg[3] or "echo"
local workers = tonumber(arg[4]) or 1

local REPLY = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
  .. "Content-Length: 13\r\n\r\nHello, World!"

local server = assert(socket.create_server({"127.0.0.1", port}, {backlog = 1024}))
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

-- The same for HTTP: count the request heads that ended (one may
-- straddle two reads: its start is kept in tail) and send that many
-- replies.
local function http(conn)
  local tail = ""
  while true do
    local data = conn:recv(bufsize)
    if not data or data == "" then break end
    local buf, n, last = tail .. data, 0, 0
    for e in buf:gmatch("\r\n\r\n()") do n, last = n + 1, e end
    tail = buf:sub(last > 0 and last or 1)
    if n > 0 and not conn:sendall(REPLY:rep(n)) then break end
  end
  conn:close()
end

local serve = mode == "http" and http or echo
socket.spawn(function()
  -- A driver that counts the server's descriptors waits for these lines:
  -- until then the supervisor's forks open and close pipes.
  if workers > 1 then print("worker ready") io.stdout:flush() end
  while true do
    local conn = server:accept()
    if conn then socket.spawn(serve, conn) end
  end
end)
-- Plain run() when one process is asked for, so that older builds (run.sh
-- --compare) run the same script.
if workers == 1 then socket.run() else socket.run{workers = workers} end

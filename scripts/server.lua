-- scripts/server.lua: the documented TCP server.
--
--   luasock scripts/server.lua [host] [port]      (defaults 127.0.0.1 8001)
--
-- Prints where it listens (port 0 picks a free port: the line shows the
-- real one), then "Connected by  ADDRESS" for each client and every
-- message a client sends, and answers each message with
-- "server received you message.".
--
-- Two lines (marked) make it serve many clients at once: socket.run runs
-- the accept loop as a task, and each client gets a task of its own.
-- Without socket.run, and with serve(conn) called directly, it is the
-- blocking server that serves one client after another.
--
-- SIGTERM ends it cleanly: it stops accepting, gives the clients still
-- connected 5 seconds to leave, closes the others and exits with 0.
local socket = require "socket"

local host, port = arg[1] or "127.0.0.1", tonumber(arg[2] or 8001)
io.stdout:setvbuf("line")   -- one line at a time, also into a pipe

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local s = assert(socket.socket(family, socket.SOCK_STREAM))
assert(s:setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, true))
assert(s:bind({host, port}))
assert(s:listen())   -- backlog 128: room for clients not accepted yet
print("Server start at: " .. tostring(s:getsockname()))
print("wait for connection...")

-- Talk to one client until it leaves: recv returns "" at the end of the
-- stream, or nil and an error if the connection broke.
local function serve(conn)
  local _ <close> = conn   -- closed however this ends (a cancel too)
  while true do
    local data = conn:recv(1024)
    if not data or data == "" then break end
    print((data:gsub("\r?\n$", "")))
    conn:sendall("server received you message.")
  end
end

local term = socket.signals("TERM")

socket.run(function()                -- (1) run the accept loop as a task
  local clients <close> = socket.group()   -- cancels the clients left at the end
  socket.spawn(function()
    term:wait()
    s:close()                        -- accept returns nil, "closed"
  end)
  while true do
    local conn, addr = s:accept()
    if not conn then break end
    print("Connected by  " .. tostring(addr))
    clients:spawn(serve, conn)       -- (2) a task per client: serve(conn)
  end
  clients:wait(5)
end)

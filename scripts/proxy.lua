-- scripts/proxy.lua: a TCP relay between a listening port and a target.
--
--   luasock scripts/proxy.lua [host] [port] [target_host] [target_port]
--                             (defaults 127.0.0.1 8001 127.0.0.1 8002)
--
-- For each client it connects to the target and relays bytes both ways
-- (socket.relay, inside C).  When one side ends its stream, the proxy
-- passes the end on (shutdown SHUT_WR) and the other direction goes on
-- until it ends too: half-closed connections work, as with `nc -N`.
-- SIGTERM ends it cleanly: it stops accepting, lets the relays under way
-- finish for 5 seconds, closes the others and exits with 0.
local socket = require "socket"

local host, port = arg[1] or "127.0.0.1", tonumber(arg[2] or 8001)
local target = { arg[3] or "127.0.0.1", tonumber(arg[4] or 8002) }
io.stdout:setvbuf("line")

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local s = assert(socket.create_server({host, port}, { family = family, backlog = 511 }))
print(("Proxy at: %s -> %s:%d"):format(tostring(s:getsockname()), target[1], target[2]))

local function relay(client, addr)
  local _ <close> = client              -- closed however this ends (a cancel too)
  local server, err = socket.create_connection(target, 10)
  if not server then
    print(("%s: cannot reach the target: %s"):format(addr, err))
    return
  end
  local _ <close> = server
  -- Pass data on at once, cut as it came: with Nagle's algorithm, a piece
  -- sent while the previous one is unacknowledged would wait for the ACK.
  for _, conn in ipairs({ client, server }) do
    conn:setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, true)
  end
  print(addr .. " connected")
  -- Bytes go both ways inside C (splice) until both streams end; a broken
  -- connection ends both directions.
  socket.relay(client, server)
  client:close()
  server:close()
  print(addr .. " closed")
end

local term = socket.signals("TERM")

socket.run(function()
  local relays <close> = socket.group()  -- cancels the relays left at the end
  socket.spawn(function()
    term:wait()
    s:close()                           -- accept returns nil, "closed"
  end)
  while true do
    local conn, addr = s:accept()
    if not conn then break end
    relays:spawn(relay, conn, tostring(addr))
  end
  relays:wait(5)
end)

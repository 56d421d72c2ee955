-- scripts/proxy.lua: a TCP relay between a listening port and a target.
--
--   luasock scripts/proxy.lua [host] [port] [target_host] [target_port]
--                             (defaults 127.0.0.1 8001 127.0.0.1 8002)
--
-- For each client it connects to the target and copies bytes both ways,
-- each direction in its own task.  When one side ends its stream, the
-- proxy passes the end on (shutdown SHUT_WR) and the other direction goes
-- on until it ends too: half-closed connections work, as with `nc -N`.
-- SIGTERM ends it cleanly: it stops accepting, lets the relays under way
-- finish for 5 seconds, closes the others and exits with 0.
local socket = require "socket"

local host, port = arg[1] or "127.0.0.1", tonumber(arg[2] or 8001)
local target = { arg[3] or "127.0.0.1", tonumber(arg[4] or 8002) }
io.stdout:setvbuf("line")

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local s = assert(socket.create_server({host, port}, { family = family, backlog = 511 }))
print(("Proxy at: %s -> %s:%d"):format(tostring(s:getsockname()), target[1], target[2]))

-- Copy from one socket to the other until from's stream ends, then pass
-- the end on.  A broken connection (or one closed by the other task)
-- ends both directions.  done() is called once at the end.
local function pump(from, to, done)
  while true do
    local data = from:recv(65536)
    if data == "" then
      if to:fileno() >= 0 then to:shutdown(socket.SHUT_WR) end
      break
    end
    if not data or not to:sendall(data) then
      from:close()
      to:close()
      break
    end
  end
  done()
end

local function relay(client, addr)
  local _ <close> = client              -- closed however this ends (a cancel too)
  local server, err = socket.create_connection(target, 10)
  if not server then
    print(("%s: cannot reach the target: %s"):format(addr, err))
    return
  end
  local _ <close> = server
  server:settimeout(nil)                -- the 10 s were for connecting; idle is fine
  -- Pass data on at once, cut as it came: with Nagle's algorithm, a piece
  -- sent while the previous one is unacknowledged would wait for the ACK.
  for _, conn in ipairs({ client, server }) do
    conn:setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, true)
  end
  print(addr .. " connected")
  local running = 2
  local function done()                 -- the second direction to end closes both
    running = running - 1
    if running > 0 then return end
    client:close()
    server:close()
    print(addr .. " closed")
  end
  local back <close> = socket.group()    -- a cancel of the relay ends it too
  back:spawn(pump, server, client, done)
  pump(client, server, done)
  back:wait()
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

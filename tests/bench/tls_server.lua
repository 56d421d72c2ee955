-- tests/bench/tls_server.lua: the luasock side of tests/bench/tls_bench.py.
--
--   luasock tls_server.lua CERT KEY BULK_BYTES
--
-- HTTPS on 127.0.0.1 (port chosen by the system, printed as "listening
-- on 127.0.0.1:PORT"): GET /big answers BULK_BYTES bytes, anything else
-- the 13-byte hello; every answer closes the connection (the benchmark
-- measures handshakes and one bulk transfer).  Each client in its task.
local socket = require "socket"
local ssl = require "socket.ssl"

local cert, key, bulk = arg[1], arg[2], tonumber(arg[3])
local ctx = ssl.create_default_context("server")
assert(ctx:load_cert_chain(cert, key))
ctx.num_tickets = 0      -- as tls_bench.py's nginx: ssl_session_tickets off
local srv = assert(socket.create_server({ "127.0.0.1", 0 }, { ssl = ctx, backlog = 1024 }))
io.stdout:setvbuf("line")
print("listening on " .. tostring(srv:getsockname()))

local CHUNK = ("x"):rep(1 << 20)

local function serve(conn)
  conn:settimeout(30)
  local f = conn:makefile("rw")
  local request = f:read("l")
  repeat local line = f:read("l") until not line or line == "\r" or line == ""
  if request and request:match("^GET /big ") then
    f:write(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"):format(bulk))
    local left = bulk
    while left > 0 and f:write(CHUNK:sub(1, math.min(left, #CHUNK))) do left = left - #CHUNK end
  elseif request then
    f:write("HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!")
  end
  f:close()
  conn:close()
end

socket.run(function()
  while true do
    local conn = srv:accept()
    if conn then socket.spawn(serve, conn) end
  end
end)

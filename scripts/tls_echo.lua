-- scripts/tls_echo.lua: a TLS echo server.
--
--   luasock scripts/tls_echo.lua CERT KEY [host] [port]   (127.0.0.1 8443)
--
-- CERT is a PEM certificate (chain) and KEY its private key, as
-- `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1
-- -nodes -keyout key.pem -out cert.pem -subj /CN=localhost -addext
-- subjectAltName=DNS:localhost` makes them.  Each client is served in its
-- own task, its handshake included, so a slow one delays nobody.  Try it
-- with `openssl s_client -connect 127.0.0.1:8443`.
local socket = require "socket"
local ssl = require "socket.ssl"

local cert, key = arg[1], arg[2]
if not key then
  io.stderr:write("usage: tls_echo.lua CERT KEY [host] [port]\n")
  os.exit(2)
end
local host, port = arg[3] or "127.0.0.1", tonumber(arg[4] or 8443)
io.stdout:setvbuf("line")

local ctx = ssl.create_default_context("server")
assert(ctx:load_cert_chain(cert, key))
local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local srv = assert(socket.create_server({ host, port }, { family = family, ssl = ctx }))
print("TLS echo server at: " .. tostring(srv:getsockname()))

-- Echo what conn sends until it ends; the first recv runs the handshake.
local function serve(conn, addr)
  conn:settimeout(60)
  local data, msg, code = conn:recv(65536)
  if data then print(("Connected by  %s (%s)"):format(tostring(addr), conn:version())) end
  while data and data ~= "" do
    if not conn:sendall(data) then break end
    data, msg, code = conn:recv(65536)
  end
  if not data then print(("%s: %s (%s)"):format(tostring(addr), msg, tostring(code))) end
  conn:close()
end

socket.run(function()
  while true do
    local conn, addr = srv:accept()
    if conn then socket.spawn(serve, conn, addr) end
  end
end)

-- scripts/https_get.lua: fetch one URL over HTTPS and print the response.
--
--   luasock scripts/https_get.lua https://localhost:8443/ [--cafile F] [--insecure]
--
-- Prints the status line, the headers and the body as they came, and
-- follows nothing (a redirect is printed like any response).  The peer's
-- certificate is verified against the system's CA store, or against the
-- CA certificates in F; --insecure verifies nothing (tests, never the
-- network).  Exits 1 with the reason (and OpenSSL's code) when the
-- connection or the handshake fails.
local socket = require "socket"
local ssl = require "socket.ssl"

local url, cafile, insecure
local i = 1
while arg[i] do
  if arg[i] == "--cafile" then cafile = arg[i + 1]; i = i + 1
  elseif arg[i] == "--insecure" then insecure = true
  else url = arg[i] end
  i = i + 1
end

local function fail(msg, code)
  io.stderr:write(("https_get: %s%s\n"):format(msg, code and (" (" .. tostring(code) .. ")") or ""))
  os.exit(1)
end

-- https://HOST[:PORT][/PATH], HOST an IPv6 literal in brackets too
local hostport, path = (url or ""):match("^https://([^/]+)(.*)$")
local host, port = (hostport or ""):match("^%[(.+)%]:?(%d*)$")
if not host then host, port = (hostport or ""):match("^([^:]+):?(%d*)$") end
if not host then
  fail("usage: https_get.lua https://HOST[:PORT]/PATH [--cafile F] [--insecure]")
end
port = tonumber(port) or 443
if path == "" then path = "/" end

local ctx = ssl.create_default_context()
if cafile then
  local ok, msg = ctx:load_verify_locations(cafile)
  if not ok then fail(msg) end
end
if insecure then
  ctx.check_hostname = false
  ctx.verify_mode = ssl.CERT_NONE
end

local s, msg, code = socket.create_connection({ host, port }, 10, nil, { ssl = ctx })
if not s then fail(msg, code) end
local hostport = host:find(":") and "[" .. host .. "]" or host
if port ~= 443 then hostport = hostport .. ":" .. port end
local ok
ok, msg, code = s:sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: luasock\r\n" ..
                           "Connection: close\r\n\r\n"):format(path, hostport))
if not ok then fail(msg, code) end
while true do
  local data
  data, msg, code = s:recv(65536)
  if not data then fail(msg, code) end
  if data == "" then break end
  io.stdout:write(data)
end
s:close()

-- scripts/starttls.lua: a small line protocol that upgrades to TLS, as
-- SMTP's STARTTLS does.
--
--   luasock scripts/starttls.lua server CERT KEY [host] [port]  (127.0.0.1 8025)
--   luasock scripts/starttls.lua client HOST PORT [CAFILE]
--
-- The server greets with "220 ready", answers "HELLO" with "250 hello"
-- (and the TLS version once upgraded), "STARTTLS" with "220 go ahead"
-- before both sides shake hands, and "QUIT" with "221 bye".  The client
-- says HELLO, STARTTLS, HELLO again over TLS and QUIT, printing each
-- reply.  Both read lines through makefile streams: what the plain
-- stream had read ahead of the handshake goes to TLS (wrap_socket takes
-- it over), never back to the script.
local socket = require "socket"
local ssl = require "socket.ssl"

io.stdout:setvbuf("line")

-- Serve one connection: plain commands until STARTTLS, then TLS.
local function session(conn, ctx)
  conn:settimeout(60)
  local f = conn:makefile("rw")
  f:write("220 ready\r\n"):flush()
  local tls
  while true do                                -- not f:lines(): f changes at STARTTLS
    local line = f:read("l")
    if not line then break end
    local cmd = line:gsub("\r$", ""):upper()
    if cmd == "HELLO" then
      f:write("250 hello", tls and (" over " .. tls:version()) or "", "\r\n"):flush()
    elseif cmd == "STARTTLS" and not tls then
      f:write("220 go ahead\r\n"):flush()
      local msg, code
      tls, msg, code = ctx:wrap_socket(conn, { server_side = true })
      if not tls then print("handshake failed: " .. msg .. " (" .. tostring(code) .. ")") return end
      f = tls:makefile("rw")                   -- the plain stream is closed now
    elseif cmd == "QUIT" then
      f:write("221 bye\r\n"):flush()
      break
    else
      f:write("500 unknown command\r\n"):flush()
    end
  end
  f:close()
  ;(tls or conn):close()
end

local function server(cert, key, host, port)
  local ctx = ssl.create_default_context("server")
  assert(ctx:load_cert_chain(cert, key))
  local srv = assert(socket.create_server({ host or "127.0.0.1", tonumber(port or 8025) }))
  print("STARTTLS server at: " .. tostring(srv:getsockname()))
  socket.run(function()
    while true do
      local conn = srv:accept()
      if conn then socket.spawn(session, conn, ctx) end
    end
  end)
end

local function client(host, port, cafile)
  local ctx = ssl.create_default_context()
  if cafile then assert(ctx:load_verify_locations(cafile)) end
  local s = assert(socket.create_connection({ host, tonumber(port) }, 10))
  local f = s:makefile("rw")
  local function say(cmd)
    if cmd then f:write(cmd, "\r\n"):flush() end
    local reply = assert(f:read("l")):gsub("\r$", "")
    print(reply)
    return reply
  end
  say()
  say("HELLO")
  if say("STARTTLS"):match("^220") then
    s = assert(ctx:wrap_socket(s, { server_hostname = host }))
    f = s:makefile("rw")
  end
  say("HELLO")
  say("QUIT")
  f:close()
  s:close()
end

if arg[1] == "server" and arg[3] then server(arg[2], arg[3], arg[4], arg[5])
elseif arg[1] == "client" and arg[3] then client(arg[2], arg[3], arg[4])
else
  io.stderr:write("usage: starttls.lua server CERT KEY [host] [port] | client HOST PORT [CAFILE]\n")
  os.exit(2)
end

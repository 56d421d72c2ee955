-- scripts/unix_echo.lua: an echo over an AF_UNIX stream socket.
--
--   luasock scripts/unix_echo.lua server PATH   echo every byte back (many clients)
--   luasock scripts/unix_echo.lua client PATH   send each input line, print its echo
--
-- A PATH starting with "@" names Linux's abstract namespace (no file), as
-- everywhere in the socket module.
local socket = require "socket"

local mode, path = arg[1], arg[2]
if not (mode == "server" or mode == "client") or not path then
  io.stderr:write("usage: unix_echo.lua server|client PATH\n")
  os.exit(2)
end
io.stdout:setvbuf("line")

-- Bind path; a socket file left by an earlier run (nobody answers on it)
-- is removed first.
local function bind(s)
  local ok, err, code = s:bind(path)
  if not ok and code == socket.errno.EADDRINUSE then
    local probe <close> = assert(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    if probe:connect_ex(path) == socket.errno.ECONNREFUSED then
      os.remove(path)
      ok, err = s:bind(path)
    end
  end
  assert(ok, err)
end

local function server()
  local s = assert(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
  bind(s)
  assert(s:listen())
  print("Unix echo server at: " .. s:getsockname())
  socket.run(function()
    while true do
      local conn = s:accept()        -- nil, err: that connection failed; go on
      if conn then
        socket.spawn(function()      -- a task per client
          while true do
            local data = conn:recv(4096)
            if not data or data == "" then break end
            conn:sendall(data)
          end
          conn:close()
        end)
      end
    end
  end)
end

local function client()
  local s = assert(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
  assert(s:connect(path))
  local f = s:makefile("r")   -- buffered reads: one echoed line at a time
  for line in io.lines() do
    assert(s:sendall(line .. "\n"))
    print(f:read("l") or error("the server closed the connection"))
  end
  f:close()
  s:close()
end

if mode == "server" then server() else client() end

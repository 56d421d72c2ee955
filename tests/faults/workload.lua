-- tests/faults/workload.lua: transfers that must come out intact while
-- faultshim.c makes the socket calls fail now and then.
--
--   luasock tests/faults/workload.lua [rounds [ca cert key]]
--
-- A server task accepts connections and serves three protocols (raw echo
-- with recv/sendall, a line echo and a length-prefixed echo through
-- streams); clients run outside any task (their waits turn the loop) and
-- in tasks.  UDP datagrams go back and forth the same two ways.  A
-- refused connect (an injected fault) is retried with a new socket.
-- With ca, cert and key (PEM files, the server's for "localhost") the
-- three protocols go over TLS.
-- Prints "ok" and exits 0 when every byte came back, nothing timed out
-- and the process holds the descriptors it started with.
local socket = require "socket"

local ROUNDS = tonumber(arg[1]) or 2
local TIMEOUT = 10

-- The TLS contexts of both ends, or nil for plain TCP.
local server_ctx, client_ctx
if arg[2] then
  local ssl = require "socket.ssl"
  server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
  assert(server_ctx:load_cert_chain(arg[3], arg[4]))
  client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
  assert(client_ctx:load_verify_locations(arg[2]))
end

local function count_fds()
  local n = 0
  for _ in require("lfs").dir("/proc/self/fd") do n = n + 1 end
  return n
end

local function data_of(size, tag)
  local t = {}
  for i = 1, size // 16 + 1 do t[i] = ("%s%014d\n"):format(tag, i) end   -- 16 bytes each
  return table.concat(t):sub(1, size)
end

-- ---- the server -----------------------------------------------------

local function serve_raw(c, f)
  local size = assert(tonumber(assert(f:read("l"))))
  local got = assert(f:read(size))
  assert(c:sendall(got))
end

local function serve_lines(c, f)
  for line in f:lines() do
    if line == "." then break end
    assert(f:write(line, "\n"))
  end
  assert(f:write(".\n"))
  assert(f:flush())
end

local function serve_framed(c, f)
  while true do
    local size = assert(tonumber(assert(f:read("l"))))
    if size < 0 then break end
    assert(f:write(size, "\n", assert(f:read(size))))
    assert(f:flush())
  end
end

local handlers = { raw = serve_raw, lines = serve_lines, framed = serve_framed }

local function serve(c)
  c:settimeout(TIMEOUT)
  local f <close> = c:makefile("rw")
  local mode = f:read("l")
  if mode then handlers[mode](c, f) end   -- nil: a client whose connect was refused late
  c:close()
end

local served = 0
local function server(l)
  while true do
    local c, err = l:accept()
    if c then
      served = served + 1
      socket.spawn(serve, c)
    elseif err == "closed" then
      return
    end   -- an aborted or refused accept: try again
  end
end

-- ---- the clients ----------------------------------------------------

-- A client of port, through TLS when the server's is, unless plain.
local function connect(port, plain)
  for _ = 1, 100 do
    local s = assert(socket.socket())
    s:settimeout(TIMEOUT)
    if s:connect({ "127.0.0.1", port }) then
      if plain or not client_ctx then return s end
      return assert(client_ctx:wrap_socket(s, { server_hostname = "localhost" }))
    end
    s:close()
  end
  error("connect refused 100 times")
end

local function client_raw(port, size)
  local s <close> = connect(port)
  local data = data_of(size, "r")
  assert(s:sendall("raw\n" .. size .. "\n" .. data))
  local parts, n = {}, 0
  while n < size do
    local got = assert(s:recv(65536))
    assert(got ~= "", "early end of stream")
    parts[#parts + 1] = got
    n = n + #got
  end
  assert(table.concat(parts) == data, "raw echo differs")
end

local function client_lines(port, count)
  local s <close> = connect(port)
  local f <close> = s:makefile("rw")
  assert(f:write("lines\n"))
  for i = 1, count do assert(f:write(("line %d %s\n"):format(i, ("x"):rep(i % 97)))) end
  assert(f:write(".\n"))
  assert(f:flush())
  for i = 1, count do
    assert(f:read("l") == ("line %d %s"):format(i, ("x"):rep(i % 97)), "line differs")
  end
  assert(f:read("l") == ".")
end

local function client_framed(port, count)
  local s <close> = connect(port)
  local f <close> = s:makefile("rw")
  assert(f:write("framed\n"))
  for i = 1, count do
    local body = data_of(i * 37 % 5000, "f")
    assert(f:write(#body, "\n", body))
    assert(f:flush())
    assert(tonumber(f:read("l")) == #body)
    assert(f:read(#body) == body, "frame differs")
  end
  assert(f:write("-1\n"))
  assert(f:flush())
end

local function udp_round(a, b, count)
  local to = b:getsockname()
  for i = 1, count do
    local msg = ("dgram %d %s"):format(i, ("u"):rep(i % 300))
    assert(a:sendto(msg, to))
    local got = assert(b:recvfrom(2048))
    assert(got == msg, "datagram differs")
  end
end

local function udp_pair()
  local a = assert(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
  local b = assert(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
  a:settimeout(TIMEOUT); b:settimeout(TIMEOUT)
  assert(a:bind({ "127.0.0.1", 0 })); assert(b:bind({ "127.0.0.1", 0 }))
  return a, b
end

-- Accept outside any task, from clients in tasks, each echoing a line.
local function accept_outside()
  local l2 <close> = assert(socket.create_server({ "127.0.0.1", 0 }))
  l2:settimeout(TIMEOUT)
  local port = l2:getsockname().port
  for i = 1, 5 do
    socket.spawn(function()
      local s <close> = connect(port, "plain")
      assert(s:sendall("hello " .. i .. "\n"))
    end)
  end
  local got = {}
  while #got < 5 do
    local c, err = l2:accept()
    if c then
      c:settimeout(TIMEOUT)
      local f <close> = c:makefile()
      got[#got + 1] = f:read("l")
      c:close()
    else
      assert(err ~= "timeout", "accept timed out")
    end
  end
  table.sort(got)
  assert(table.concat(got, ",") == "hello 1,hello 2,hello 3,hello 4,hello 5", table.concat(got, ","))
end

-- ---- the run --------------------------------------------------------

-- One round: a listener and its server task; the clients outside a task,
-- then in three tasks, the last of which to end (<close>, even on an
-- error) closes the listener so that run returns.
local function round()
  local l = assert(socket.create_server({ "127.0.0.1", 0 }, { ssl = server_ctx }))
  local port = l:getsockname().port
  local function clients()
    client_raw(port, 300000)
    client_lines(port, 400)
    client_framed(port, 60)
  end
  local function udp()
    local a, b = udp_pair()
    local _ <close> = a
    local _ <close> = b
    udp_round(a, b, 100)
  end
  socket.spawn(server, l)
  clients()                                  -- outside: waits turn the loop
  udp()
  accept_outside()
  local left = 3
  local last = setmetatable({}, { __close = function()
    left = left - 1
    if left == 0 then l:close() end
  end })
  for _, fn in ipairs({ clients, clients, udp }) do
    socket.spawn(function()
      local _ <close> = last
      fn()
    end)
  end
  assert(socket.run())
end

-- The loop makes its epoll set and eventfd at the first wait on a
-- descriptor and keeps them: a task parked in recv makes them before the
-- count, which they are not part of.
local a, b = socket.socketpair()
socket.spawn(function() a:recv(1) end)
assert(socket.run(function() b:sendall("x") end))
a:close(); b:close()
local fds = count_fds()
for _ = 1, ROUNDS do round() end
assert(served >= ROUNDS * 9, "served " .. served)
collectgarbage(); collectgarbage()
assert(count_fds() == fds, ("descriptors: %d at the start, %d at the end"):format(fds, count_fds()))
print("ok")

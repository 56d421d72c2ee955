-- tests/embed/allocfail.lua: the workload allocfail.c runs once per
-- allocation it makes fail.  It touches every part of the module that
-- allocates: sockets, connect/accept, streams, tasks, select, the
-- resolver, descriptor passing, UDP.  Every failure it meets must be a
-- clean "not enough memory" error (it checks what it can and lets the
-- rest raise).  Descriptors received with recv_fds belong to the script
-- once returned: they go into got[1], a slot that exists beforehand (an
-- assignment there allocates nothing), and the harness closes them.
local got = ...
local socket = require "socket"

local function check(ok, err, ...)
  if not ok then error(err, 0) end
  return ok, err, ...
end

-- A listening socket and a client connected to it, outside any task.
local srv = check(socket.create_server({ "127.0.0.1", 0 }))
srv:settimeout(2)
local addr = srv:getsockname()
local c = check(socket.create_connection({ "127.0.0.1", addr.port }, 2))
local conn = check(srv:accept())
conn:settimeout(2)
assert(tostring(addr):find("127.0.0.1", 1, true))

-- Streams: lines, numbers and counts both ways.
local w = c:makefile("w")
check(w:write("hello\n", 42, " tail"))
check(w:flush())
local r = conn:makefile("r", { max_line = 100 })
assert(check(r:read("l")) == "hello")
assert(check(r:read("n")) == 42)
assert(check(r:read(5)) == " tail")
w:close(); r:close()

-- select over the two ends.
check(c:sendall("x"))
local rd = socket.select({ conn, c }, nil, 1)
assert(rd[1] == conn)
assert(check(conn:recv(10)) == "x")

-- Tasks: an echo server task, two clients, a sleep and a name lookup.
-- A task dying of a failed allocation closes, through the guard every
-- task holds, the listening socket and every socket of the run (slots
-- made beforehand: storing there allocates nothing), so that no task
-- waits for one that is gone and the run ends at once.
local live = { false, false, false, false }
local guard = setmetatable({}, { __close = function(_, err)
  if not err then return end
  srv:close()
  for i = 1, #live do if live[i] then live[i]:close() end end
end })
local function echo(conn_)
  local _ <close> = guard
  local s <close> = conn_
  while true do
    local data = check(s:recv(100))
    if data == "" then break end
    check(s:sendall(data))
  end
end
local ok, err = socket.run(function()
  local _ <close> = guard
  socket.spawn(function()
    local _ <close> = guard
    for i = 1, 2 do
      live[i] = check(srv:accept())
      socket.spawn(echo, live[i])
    end
  end)
  for i = 1, 2 do
    socket.spawn(function()
      local _ <close> = guard
      live[2 + i] = check(socket.create_connection({ "127.0.0.1", addr.port }, 2))
      local s <close> = live[2 + i]
      local f <close> = s:makefile("rw")
      check(f:write("ping ", i, "\n"))
      assert(check(f:read("l")) == "ping " .. i)
    end)
  end
  socket.sleep(0.001)
  local list = check(socket.getaddrinfo("localhost", 80, socket.AF_INET))
  assert(list[1].address.port == 80)
end)
if not ok then error(err, 0) end

-- The resolver outside a task, and literals.
check(socket.getaddrinfo("127.0.0.1", "80"))
check(socket.getnameinfo({ "::1", 80 }, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV))
check(socket.inet_pton(socket.AF_INET6, "::1"))

-- Descriptor passing and ancillary data.
local a, b = check(socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM))
check(socket.send_fds(a, "fd", { c:fileno() }))
local data, fds = socket.recv_fds(b, 16, 2)
check(data, fds)
got[1] = fds
check(a:sendmsg({ "one", "two" }))
assert(check(b:recvmsg(16)) == "onetwo")
a:close(); b:close()

-- UDP.
local u = check(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
u:settimeout(2)
check(u:bind({ "127.0.0.1", 0 }))
check(u:sendto("dgram", u:getsockname()))
local msg, from = u:recvfrom(100)
check(msg, from)
assert(from.port == u:getsockname().port)
u:close()

c:close(); conn:close(); srv:close()
return "done"

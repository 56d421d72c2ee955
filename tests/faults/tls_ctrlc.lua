-- tests/faults/tls_ctrlc.lua: a Ctrl-C that comes during a TLS read or
-- write, run under faultshim.c with FAULTS=sigint (SIGINT raised at the
-- process, then EINTR, from the first recv* or send* once ARMFILE exists).
--
--   luasock tests/faults/tls_ctrlc.lua ca cert key armfile read|write|task
--
-- Both ends are in this process, over a socketpair, shaken hands before
-- the file is made.  read: the server's "hello" waits; the client's recv,
-- outside a task, is interrupted; printed: pcall's false and message,
-- then what the next recv gets.  write: the client's sendall of "hello"
-- is interrupted; a TLS write must be retried with the same data, which
-- the client does, then sends "."; printed: pcall's results, then all the
-- server got.  task: the recv is in a task; the script must end there.
local socket = require "socket"

local ca, cert, key, armfile, what = table.unpack(arg)
local client, server = require("tests.faults.tls_pair")(ca, cert, key)

local function arm() assert(io.open(armfile, "w")):close() end

if what == "read" then
  assert(server:sendall("hello"))
  arm()
  print(pcall(client.recv, client, 100))
  print(client:recv(100))
elseif what == "write" then
  arm()
  print(pcall(client.sendall, client, "hello"))
  assert(client:sendall("hello"))
  assert(client:sendall("."))
  local got = ""
  while got:sub(-1) ~= "." do got = got .. assert(server:recv(100)) end
  print(got)
elseif what == "task" then
  assert(server:sendall("hello"))
  socket.spawn(function() arm(); print(client:recv(100)) end)
  print(socket.run())
  print("after run")
end

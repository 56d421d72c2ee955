-- tests/faults/tls_close.lua: a TLS connection's end while signals
-- interrupt its sends, run under faultshim.c with FAULTS=eintr,
-- FAULT_RATE=100 and FAULT_LIMIT, so that the first calls FAULT_CALLS
-- names after ARMFILE exists fail with EINTR.
--
--   luasock tests/faults/tls_close.lua ca cert key armfile close|unwrap
--
-- Both ends are in this process, over a socketpair, shaken hands before
-- the file is made; the server does not allow ragged EOFs.  close: the
-- client closes; printed: what the server's recv gets ("" for a clean
-- close_notify).  unwrap: both ends unwrap, the server in a task, then
-- the plain client sends "plain"; printed: what the plain server got.
local socket = require "socket"

local ca, cert, key, armfile, what = table.unpack(arg)
local client, server = require("tests.faults.tls_pair")(ca, cert, key, { suppress_ragged_eofs = false })

local function arm() assert(io.open(armfile, "w")):close() end

if what == "close" then
  arm()
  client:close()
  print(server:recv(100))
elseif what == "unwrap" then
  arm()
  local plain_server
  socket.spawn(function() plain_server = assert(server:unwrap()) end)
  local plain_client = assert(client:unwrap())
  assert(socket.run())
  assert(plain_client:sendall("plain"))
  print(plain_server:recv(100))
end

-- tests/faults/tls_pair.lua: the two ends of a TLS connection in one
-- process, over a socketpair, shaken hands before the caller arms the
-- fault shim (timeouts of 5 s).  The scripts beside it require it:
--
--   local client, server = require("tests.faults.tls_pair")(ca, cert, key [, server_opts])
local socket = require "socket"
local ssl = require "socket.ssl"

return function(ca, cert, key, server_opts)
  local sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
  assert(sctx:load_cert_chain(cert, key))
  local cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
  assert(cctx:load_verify_locations(ca))
  local opts = { server_side = true }
  for k, v in pairs(server_opts or {}) do opts[k] = v end
  local a, b = socket.socketpair()
  a:settimeout(5); b:settimeout(5)
  local server
  socket.spawn(function() server = assert(sctx:wrap_socket(b, opts)) end)
  local client = assert(cctx:wrap_socket(a, { server_hostname = "localhost" }))
  assert(socket.run())
  return client, server
end

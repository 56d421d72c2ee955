-- luasock.ssl: the parts of socket.ssl written in Lua, given the module
-- table, the context and TLS socket method tables and the plain socket
-- methods by luaopen_socket_ssl: the calls that join a plain call to TLS
-- (connect, accept, unwrap).
return function(ssl, ctx_methods, tls_methods, plain)
  -- s:connect(address): a plain connect, then the handshake unless
  -- do_handshake_on_connect was false.
  function tls_methods.connect(s, ...)
    local ok, msg, code = plain.connect(s, ...)
    if not ok then return ok, msg, code end
    if s.do_handshake_on_connect then return s:do_handshake() end
    return true
  end

  -- s:accept() -> conn, address: conn is a TLS socket that shakes hands on
  -- its first call (in whatever task serves it), never here.
  function tls_methods.accept(s)
    local conn, address, code = plain.accept(s)
    if not conn then return conn, address, code end
    return s.context:wrap_socket(conn, { server_side = true, do_handshake_on_connect = false }),
           address
  end

  -- s:unwrap() -> the plain socket on the same descriptor, after both
  -- sides sent close_notify (STARTTLS teardown); s is closed.
  function tls_methods.unwrap(s)
    local ok, msg, code = s:_shutdown_tls()
    if not ok then return nil, msg, code end
    return s:_detach_plain()
  end

  return ssl
end

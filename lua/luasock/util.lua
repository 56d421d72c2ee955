-- luasock.util: module functions written in Lua, added to the socket
-- table by luaopen_socket: create_connection and create_server, as in
-- Python's socket module.  They return nil, message, errno on failure of
-- the network (the last error when every address failed) and raise on
-- misuse, like the C functions.
return function(socket)

  -- Close s and pass an error triple through.
  local function fail(s, msg, code)
    if s then s:close() end
    return nil, msg, code
  end

  -- One attempt of create_connection: a socket for the getaddrinfo
  -- entry ai, bound to source if given, connected within timeout (nil:
  -- the default timeout).  Kept apart so that the scheduler can race
  -- several attempts (Happy Eyeballs) inside tasks.
  local function connect_one(ai, timeout, source)
    local s, msg, code = socket.socket(ai.family, ai.type, ai.proto)
    if not s then return nil, msg, code end
    if timeout ~= nil then s:settimeout(timeout) end
    if source ~= nil then
      local ok, m, c = s:bind(source)
      if not ok then return fail(s, m, c) end
    end
    local ok, m, c = s:connect(ai.address)
    if not ok then return fail(s, m, c) end
    return s
  end

  -- socket.create_connection({host, port} [, timeout [, source_address]])
  -- tries every address getaddrinfo gives for host, in its order, and
  -- returns the first socket that connects.
  function socket.create_connection(address, timeout, source)
    if type(address) ~= "table" then
      error(("bad argument #1 to 'create_connection' (address {host, port} expected, got %s)")
        :format(type(address)), 2)
    end
    if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
      error("bad argument #2 to 'create_connection' (non-negative number expected)", 2)
    end
    local infos, msg, code = socket.getaddrinfo(address[1], address[2], socket.AF_UNSPEC,
                                                socket.SOCK_STREAM)
    if not infos then return nil, msg, code end
    msg, code = "getaddrinfo returned no address", socket.errno.EADDRNOTAVAIL
    for _, ai in ipairs(infos) do
      local s, m, c = connect_one(ai, timeout, source)
      if s then return s end
      msg, code = m, c
    end
    return nil, msg, code
  end

  local function check_opts(opts)
    if opts ~= nil and type(opts) ~= "table" then
      error(("bad argument #2 to 'create_server' (table expected, got %s)"):format(type(opts)), 3)
    end
    opts = opts or {}
    local family = opts.family or socket.AF_INET
    if opts.dualstack_ipv6 and family ~= socket.AF_INET6 then
      error("bad argument #2 to 'create_server' (dualstack_ipv6 requires family AF_INET6)", 3)
    end
    return opts, family
  end

  -- The options of a listening socket, before bind.
  local function server_options(s, family, opts)
    if family == socket.AF_INET or family == socket.AF_INET6 then
      local ok, m, c = s:setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      if not ok then return nil, m, c end
    end
    if opts.reuse_port then
      local ok, m, c = s:setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
      if not ok then return nil, m, c end
    end
    if family == socket.AF_INET6 then    -- v6 only unless dual-stack is asked for
      return s:setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, not opts.dualstack_ipv6)
    end
    return true
  end

  -- socket.create_server(address [, opts]) -> a listening socket with
  -- SO_REUSEADDR set.  opts: family (AF_INET), backlog, reuse_port,
  -- dualstack_ipv6 (AF_INET6 accepting IPv4 too).
  function socket.create_server(address, opts)
    local family
    opts, family = check_opts(opts)
    local s, msg, code = socket.socket(family, socket.SOCK_STREAM)
    if not s then return nil, msg, code end
    local ok, m, c = server_options(s, family, opts)
    if not ok then return fail(s, m, c) end
    ok, m, c = s:bind(address)
    if not ok then return fail(s, m, c) end
    ok, m, c = s:listen(opts.backlog)
    if not ok then return fail(s, m, c) end
    return s
  end
end

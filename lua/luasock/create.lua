-- luasock.create: module functions written in Lua, added to the socket
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

  -- Happy Eyeballs (RFC 8305) for create_connection.  The attempts are
  -- non-blocking connects raced with socket.select over the pending
  -- sockets.  One code path serves tasks and plain code alike: select
  -- yields to the loop inside a task (the other tasks run meanwhile) and
  -- blocks the caller outside, as every wait of the module does, so the
  -- race needs no scheduler or thread of its own.
  local E = socket.errno
  local DELAY = 0.25    -- RFC 8305 section 5: the Connection Attempt Delay

  -- RFC 8305 section 4: alternate the families, IPv6 first, keeping
  -- getaddrinfo's order within each family.
  local function interleave(infos)
    local v6, other, list = {}, {}, {}
    for _, ai in ipairs(infos) do
      table.insert(ai.family == socket.AF_INET6 and v6 or other, ai)
    end
    for i = 1, math.max(#v6, #other) do
      list[#list + 1] = v6[i]
      list[#list + 1] = other[i]
    end
    return list
  end

  -- A race: the pending sockets in start order (pending), the address of
  -- each (address[s]), when the next attempt is due (next_at) and the
  -- last failure (msg, code).  A to-be-closed value: closing it closes
  -- every socket still pending, so no loser is left open whether the
  -- call wins, fails, times out, raises or its task is cancelled.
  local Race = {}
  Race.__index = Race

  local function new_race(source)
    return setmetatable({ pending = {}, address = {}, source = source, next_at = 0,
                          msg = "getaddrinfo returned no address",
                          code = E.EADDRNOTAVAIL }, Race)
  end

  function Race:__close()
    for _, s in ipairs(self.pending) do s:close() end
  end

  -- Take s out of the race (it stays open).
  function Race:remove(s)
    for k, p in ipairs(self.pending) do
      if p == s then table.remove(self.pending, k) break end
    end
    self.address[s] = nil
  end

  -- Close s (if any) with its error, which becomes the last failure; the
  -- next attempt is due at once, as RFC 8305 asks.
  function Race:failed(s, msg, code)
    if s then self:remove(s); s:close() end
    self.msg, self.code, self.next_at = msg, code, 0
  end

  -- Start a non-blocking connect to the getaddrinfo entry ai (from the
  -- source address, if any); the next attempt is due DELAY from now.
  -- The socket joins the race before bind, so a raise cannot leak it.
  function Race:start(ai)
    self.next_at = socket.gettime() + DELAY
    local s, m, c = socket.socket(ai.family, ai.type, ai.proto)
    if not s then return self:failed(nil, m, c) end
    self.pending[#self.pending + 1], self.address[s] = s, ai.address
    s:settimeout(0)
    local ok = true
    if self.source ~= nil then ok, m, c = s:bind(self.source) end
    if ok then ok, m, c = s:connect(ai.address) end
    if not ok and c ~= E.EINPROGRESS then self:failed(s, m, c) end
  end

  -- Wait until an attempt ends, the next one is due (if more is true) or
  -- the deadline passes.  Returns the winner (out of the race), false
  -- when none won yet, or nil, msg, errno when select itself failed.  A
  -- second connect on a writable socket reports the outcome as a blocking
  -- connect would: true (or EISCONN), or the system's message and errno
  -- (SO_ERROR would give only the number).
  function Race:wait(deadline, more)
    local now, wait = socket.gettime(), nil
    if more then wait = self.next_at - now end
    if deadline and (wait == nil or deadline - now < wait) then wait = deadline - now end
    local r, ready, code = socket.select({}, self.pending, wait and math.max(wait, 0))
    if not r then return nil, ready, code end
    for _, s in ipairs(ready) do
      local ok, m, c = s:connect(self.address[s])
      if ok or c == E.EISCONN then self:remove(s); return s end
      if c ~= E.EINPROGRESS and c ~= E.EALREADY then self:failed(s, m, c) end
    end
    return false
  end

  -- The TLS options of create_connection and create_server: opts.ssl is
  -- a context, or true for ssl.create_default_context().  TLS is loaded
  -- only when asked for.
  local function tls_context(opts, fname)
    if opts == nil or opts.ssl == nil or opts.ssl == false then return nil end
    if opts.ssl == true and fname == "create_connection" then
      return require("socket.ssl").create_default_context()
    end
    if type(opts.ssl) ~= "userdata" then
      error(("bad argument to '%s' (ssl: an SSLContext%s expected)")
        :format(fname, fname == "create_connection" and " or true" or ""), 3)
    end
    return opts.ssl
  end

  -- Wrap s (connected or listening) with the TLS context ctx, closing s
  -- when the handshake fails.  A connected socket's handshake ends by
  -- deadline (when not nil); its own timeout is restored after.
  local function tls_wrap(s, ctx, wrap_opts, deadline)
    local timeout = s:gettimeout()
    if deadline then
      local left = deadline - socket.gettime()
      if left <= 0 then return fail(s, "timeout", E.ETIMEDOUT) end
      s:settimeout(left)
    end
    local t, m, c = ctx:wrap_socket(s, wrap_opts)
    if not t then return fail(s, m, c) end
    t:settimeout(timeout)
    return t
  end

  local connect

  -- socket.create_connection({host, port} [, timeout [, source_address
  -- [, opts]]]) races the addresses getaddrinfo gives for host (Happy
  -- Eyeballs) and returns the first socket that connects, with the
  -- timeout (or the default timeout) set.  The timeout is one deadline for
  -- the whole call.  opts.ssl (a context, or true for the default one)
  -- makes it a TLS socket that has shaken hands with
  -- opts.server_hostname (default: the host of the address), within that
  -- deadline too.
  function socket.create_connection(address, timeout, source, opts)
    if opts ~= nil and type(opts) ~= "table" then
      error(("bad argument #4 to 'create_connection' (table expected, got %s)"):format(type(opts)), 2)
    end
    local ctx = tls_context(opts, "create_connection")
    local started = socket.gettime()
    local s, m, c = connect(address, timeout, source)
    if not s or not ctx then return s, m, c end
    local limit = s:gettimeout()          -- timeout, or the default one
    return tls_wrap(s, ctx, { server_hostname = opts.server_hostname or address[1] },
                    limit and started + limit)
  end

  function connect(address, timeout, source)
    if type(address) ~= "table" then
      error(("bad argument #1 to 'create_connection' (address {host, port} expected, got %s)")
        :format(type(address)), 3)
    end
    if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
      error("bad argument #2 to 'create_connection' (non-negative number expected)", 3)
    end
    if timeout == nil then timeout = socket.getdefaulttimeout() end
    local deadline = timeout and socket.gettime() + timeout
    local infos, msg, code = socket.getaddrinfo(address[1], address[2], socket.AF_UNSPEC,
                                                socket.SOCK_STREAM)
    if not infos then return nil, msg, code end
    local list, i = interleave(infos), 1
    local race <close> = new_race(source)
    while i <= #list or #race.pending > 0 do
      if i <= #list and (#race.pending == 0 or socket.gettime() >= race.next_at) then
        race:start(list[i])
        i = i + 1
      else
        local s, m, c = race:wait(deadline, i <= #list)
        if s then s:settimeout(timeout); return s end
        if s == nil then return nil, m, c end
        if deadline and socket.gettime() >= deadline and #race.pending > 0 then
          return nil, "timeout", E.ETIMEDOUT   -- an attempt that ended keeps its own error
        end
      end
    end
    return nil, race.msg, race.code
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
  -- dualstack_ipv6 (AF_INET6 accepting IPv4 too), ssl (a server context:
  -- a TLS listening socket, whose accepted sockets shake hands on their
  -- first call).
  function socket.create_server(address, opts)
    local family
    opts, family = check_opts(opts)
    local ctx = tls_context(opts, "create_server")
    local s, msg, code = socket.socket(family, socket.SOCK_STREAM)
    if not s then return nil, msg, code end
    local ok, m, c = server_options(s, family, opts)
    if not ok then return fail(s, m, c) end
    ok, m, c = s:bind(address)
    if not ok then return fail(s, m, c) end
    ok, m, c = s:listen(opts.backlog)
    if not ok then return fail(s, m, c) end
    if ctx then return tls_wrap(s, ctx, { server_side = true }) end
    return s
  end
end

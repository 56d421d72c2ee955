-- scripts/redis_server.lua: a small in-memory server speaking RESP, the
-- protocol of Redis, so redis-cli and redis-benchmark can talk to it.
--
--   luasock scripts/redis_server.lua [host] [port]  (defaults 127.0.0.1 8001)
--
-- Commands: PING, ECHO, SET (EX, PX, NX, XX), GET, DEL, EXISTS, INCR,
-- EXPIRE, TTL, PTTL, CONFIG GET, COMMAND, QUIT; inline commands ("PING"
-- typed into nc) and pipelined requests.  Keys expire lazily, when next
-- touched.  Try it with `redis-cli -p 8001`.
local socket = require "socket"

local host, port = arg[1] or "127.0.0.1", tonumber(arg[2] or 8001)
io.stdout:setvbuf("line")

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local s = assert(socket.create_server({host, port}, { family = family, backlog = 511 }))
print("Redis server at: " .. tostring(s:getsockname()))

-- ---- the data: strings, and deadlines on the monotonic clock ----------
local data, deadline = {}, {}

local function now_ms() return socket.gettime() * 1000 end

-- The value of key, or nil (a key past its deadline is deleted here).
local function lookup(key)
  local d = deadline[key]
  if d and now_ms() >= d then data[key], deadline[key] = nil, nil end
  return data[key]
end

-- ---- RESP replies -----------------------------------------------------
local OK = "+OK\r\n"
local NIL = "$-1\r\n"
local function int(n) return ":" .. n .. "\r\n" end
local function err(msg) return "-" .. msg .. "\r\n" end
local function bulk(str) return "$" .. #str .. "\r\n" .. str .. "\r\n" end
local function array(list)
  local out = { "*" .. #list .. "\r\n" }
  for i, str in ipairs(list) do out[i + 1] = bulk(str) end
  return table.concat(out)
end
local NOT_INT = err("ERR value is not an integer or out of range")
local SYNTAX = err("ERR syntax error")

-- An integer argument ("12", "-3"), or nil.
local function integer(str)
  return str:match("^%-?%d+$") and math.tointeger(tonumber(str))
end

-- ---- commands: name -> {arity, function(args) -> reply} ---------------
-- arity counts the name; a negative arity -n means "at least n".
local commands = {}

commands.PING = { -1, function(a)
  if #a > 2 then return err("ERR wrong number of arguments for 'ping' command") end
  return a[2] and bulk(a[2]) or "+PONG\r\n"
end }

commands.ECHO = { 2, function(a) return bulk(a[2]) end }

commands.GET = { 2, function(a)
  local v = lookup(a[2])
  return v and bulk(v) or NIL
end }

-- SET key value [NX|XX] [EX seconds|PX milliseconds]
commands.SET = { -3, function(a)
  local key, ttl, nx, xx = a[2], nil, false, false
  local i = 4
  while a[i] do
    local opt = a[i]:upper()
    if opt == "NX" then nx = true
    elseif opt == "XX" then xx = true
    elseif (opt == "EX" or opt == "PX") and a[i + 1] and not ttl then
      local n = integer(a[i + 1])
      if not n then return NOT_INT end
      if n <= 0 then return err("ERR invalid expire time in 'set' command") end
      ttl = opt == "EX" and n * 1000 or n
      i = i + 1
    else return SYNTAX end
    i = i + 1
  end
  if nx and xx then return SYNTAX end
  local exists = lookup(key) ~= nil
  if (nx and exists) or (xx and not exists) then return NIL end
  data[key], deadline[key] = a[3], ttl and now_ms() + ttl
  return OK
end }

-- How many of the keys exist, deleting them when del is set.
local function count(a, del)
  local n = 0
  for i = 2, #a do
    if lookup(a[i]) then
      n = n + 1
      if del then data[a[i]], deadline[a[i]] = nil, nil end
    end
  end
  return int(n)
end
commands.DEL = { -2, function(a) return count(a, true) end }
commands.EXISTS = { -2, function(a) return count(a, false) end }

commands.INCR = { 2, function(a)
  local n = integer(lookup(a[2]) or "0")
  if not n then return NOT_INT end
  if n == math.maxinteger then return err("ERR increment or decrement would overflow") end
  data[a[2]] = tostring(n + 1)    -- the deadline, if any, stays
  return int(n + 1)
end }

commands.EXPIRE = { 3, function(a)
  local n = integer(a[3])
  if not n then return NOT_INT end
  if not lookup(a[2]) then return int(0) end
  if n <= 0 then data[a[2]], deadline[a[2]] = nil, nil   -- expired at once
  else deadline[a[2]] = now_ms() + n * 1000 end
  return int(1)
end }

-- Time to live in ms: -2 no such key, -1 no deadline.
local function pttl(key)
  if not lookup(key) then return -2 end
  local d = deadline[key]
  return d and math.max(0, math.floor(d - now_ms() + 0.5)) or -1
end
commands.PTTL = { 2, function(a) return int(pttl(a[2])) end }
commands.TTL = { 2, function(a)
  local ms = pttl(a[2])
  return int(ms < 0 and ms or (ms + 500) // 1000)
end }

-- What redis-benchmark asks before it starts, and redis-cli at its prompt.
local CONFIG = { save = "", appendonly = "no" }
commands.CONFIG = { -2, function(a)
  if a[2]:upper() ~= "GET" or #a < 3 then return err("ERR unsupported CONFIG subcommand") end
  local out = {}
  for i = 3, #a do
    if CONFIG[a[i]] then out[#out + 1] = a[i]; out[#out + 1] = CONFIG[a[i]] end
  end
  return array(out)
end }
commands.COMMAND = { -1, function() return "*0\r\n" end }
commands.QUIT = { 1, function() return OK end }

-- The reply to one command (a list of strings).
local function execute(a)
  local name = a[1]:upper()
  local cmd = commands[name]
  if not cmd then
    local shown = {}
    for i = 2, math.min(#a, 4) do shown[#shown + 1] = "'" .. a[i] .. "' " end
    return err(("ERR unknown command '%s', with args beginning with: %s"):format(
      a[1], table.concat(shown)))
  end
  local arity = cmd[1]
  if (arity > 0 and #a ~= arity) or (arity < 0 and #a < -arity) then
    return err(("ERR wrong number of arguments for '%s' command"):format(name:lower()))
  end
  return cmd[2](a)
end

-- ---- reading requests ---------------------------------------------------
-- A client cannot make the server hold much memory for one request: a
-- line longer than the stream's limit (64 KiB) reads as nil and ends the
-- connection, and the bulk strings of a request add up to at most
-- MAX_REQUEST bytes (Redis allows 512 MB each; a small server takes less).
local MAX_REQUEST = 16 * 1024 * 1024

-- One request from stream f: a RESP array of bulk strings, or an inline
-- command (words on a line).  Returns the list of strings; nil at the end
-- of the stream; false and a message for a protocol error.
local function read_request(f)
  local line = f:read("l")
  if not line then return nil end
  line = line:gsub("\r$", "")
  if line:sub(1, 1) ~= "*" then               -- inline: PING, SET k v
    local words = {}
    for w in line:gmatch("%S+") do words[#words + 1] = w end
    return words
  end
  local n = tonumber(line:sub(2))
  if not n or n > 1024 * 1024 then return false, "Protocol error: invalid multibulk length" end
  local args, size = {}, 0
  for i = 1, n do
    local head = f:read("l")
    if not head then return nil end
    local len = tonumber(head:match("^%$(%d+)\r?$"))
    if not len then return false, "Protocol error: expected '$', got '" .. head:sub(1, 1) .. "'" end
    size = size + len
    if size > MAX_REQUEST then return false, "Protocol error: invalid bulk length" end
    local arg = f:read(len + 2)                -- the string and its CRLF
    if not arg or #arg < len + 2 then return nil end
    args[i] = arg:sub(1, len)
  end
  return args
end

local function serve(conn)
  -- Replies are flushed one by one; TCP_NODELAY keeps Nagle's algorithm
  -- from holding a reply back until the client acknowledges the previous.
  conn:setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, true)
  local f = conn:makefile("rw")
  while true do
    local args, perr = read_request(f)
    if args == nil then break end
    if args == false then                      -- the stream is out of step: answer, hang up
      f:write(err("ERR " .. perr))
      f:flush()
      break
    end
    if #args > 0 then
      f:write(execute(args))
      if not f:flush() or args[1]:upper() == "QUIT" then break end
    end
  end
  f:close()
  conn:close()
end

socket.run(function()
  while true do
    local conn = s:accept()   -- nil, err: that connection failed; go on
    if conn then socket.spawn(serve, conn) end
  end
end)

-- tests/fuzz/api.lua: every public function and method, called with
-- hostile arguments (every Lua type, NaN, infinities, huge and negative
-- numbers, tables whose metamethods raise, closed sockets, sockets of the
-- wrong family, streams, tasks), directly, from a task, and from a
-- coroutine the script resumes itself.  Any error is an acceptable
-- answer; a crash, a sanitizer report or a hang past the watchdog is not.
local socket = require "socket"
local new = dofile(FUZZ_DIR .. "/input.lua")

local boom = setmetatable({}, {
  __index = function() error("boom") end,
  __len = function() error("boom") end,
  __tostring = function() error("boom") end,
  __eq = function() error("boom") end,
  __call = function() error("boom") end,
})

-- Functions of a table (the module, a metatable's __index).
local function functions_of(t, prefix, out)
  local names = {}
  for k, v in pairs(t) do
    if type(v) == "function" then names[#names + 1] = k end
  end
  table.sort(names)
  for _, k in ipairs(names) do out[#out + 1] = { prefix .. k, t[k] } end
  return out
end

local TARGETS = functions_of(socket, "socket.", {})
do
  local s = socket.socket()
  local mt = getmetatable(s)
  functions_of(mt.__index, "sock:", TARGETS)
  functions_of(mt, "sock.", TARGETS)
  local f = s:makefile("rw")
  functions_of(getmetatable(f).__index, "stream:", TARGETS)
  functions_of(getmetatable(f), "stream.", TARGETS)
  f:close(); s:close()
  local u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
  assert(u:bind({ "127.0.0.1", 0 }))
  functions_of(getmetatable(u:getsockname()), "address.", TARGETS)
  u:close()
  for name, obj in pairs({ queue = socket.queue(), event = socket.event(), lock = socket.lock(),
                           semaphore = socket.semaphore(2), task = socket.spawn(function() end),
                           group = socket.group() }) do
    functions_of(getmetatable(obj).__index, name .. ":", TARGETS)
    functions_of(getmetatable(obj), name .. ".", TARGETS)
  end
  socket.run()
end

-- The values of one input: fresh sockets (non-blocking) and constants.
local function pool()
  local v = {
    nil, true, false, 0, 1, -1, 0.5, 2 ^ 53, -2 ^ 63, math.maxinteger, math.mininteger,
    0 / 0, math.huge, -math.huge, 1e308, 65536, "", "x", ("y"):rep(70000), "l", "n",
    "127.0.0.1", "::1", "\0fuzz", {}, { "127.0.0.1", 0 }, { "::1", 0, 0, 0 },
    { "127.0.0.1", 1 }, { boom, boom }, { 1, 2, 3 }, boom, print, coroutine.create(print),
    io.stdout, socket.AF_INET6, socket.SOCK_DGRAM, socket.SOL_SOCKET, socket.SO_REUSEADDR,
  }
  local socks = {}
  local function add(s)
    if s then
      s:settimeout(0)
      socks[#socks + 1] = s
      v[#v + 1] = s
    end
    return s
  end
  local l = add(socket.socket())
  l:bind({ "127.0.0.1", 0 }); l:listen()
  local c = add(socket.socket())
  c:connect(l:getsockname())
  add(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
  local u = add(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
  u:bind({ "127.0.0.1", 0 })
  v[#v + 1] = u:getsockname()
  local a, b = socket.socketpair()
  add(a); add(b)
  b:sendall("line one\n42 rest")
  v[#v + 1] = a:makefile("rw")
  local closed = add(socket.socket())
  closed:close()
  local co = socket.spawn(function() return 1 end)
  v[#v + 1] = co
  v[#v + 1] = socket.queue(1)
  v[#v + 1] = socket.lock()
  return v, socks
end

-- Call fn with up to 4 values from the pool, in the way the input picks.
local function call(input, v, fn)
  local args, n = {}, input:byte() % 5
  for i = 1, n do args[i] = v[input:byte() % 48 + 1] end
  local how = input:byte() % 4
  if how == 0 then
    pcall(fn, table.unpack(args, 1, n))
  elseif how == 1 then
    socket.spawn(function() pcall(fn, table.unpack(args, 1, n)) end)
    pcall(socket.run)
  elseif how == 2 then
    coroutine.resume(coroutine.create(function() return fn(table.unpack(args, 1, n)) end))
  else
    local task = socket.spawn(function() return fn(table.unpack(args, 1, n)) end)
    coroutine.resume(debug.getuservalue(task))   -- the task's coroutine, resumed by the script
    pcall(socket.run)
  end
end

return function(data)
  local input = new(data)
  local v, socks = pool()
  for _ = 1, input:byte() % 8 + 1 do
    local target = input:pick(TARGETS)
    for _, s in ipairs(socks) do
      if s:fileno() >= 0 then s:settimeout(0) end
    end
    call(input, v, target[2])
  end
  for _, s in ipairs(socks) do s:close() end
  pcall(socket.run)
  socket.setdefaulttimeout(nil)
end

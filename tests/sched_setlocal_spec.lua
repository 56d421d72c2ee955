-- sched_setlocal_spec: a call waiting in a task whose state debug.setlocal
-- changed meanwhile ends with a clear error or the right result, never a
-- crash, a lost descriptor or a read outside a block.
local socket = require "socket"
local support = require "tests.support"

describe("a waiting call whose state debug.setlocal changed", function()
  -- A call waiting in a task keeps its state in C temporaries of the
  -- task's coroutine, which debug.setlocal(co, 0, i, v) can replace.  After
  -- the wait each continuation checks them again: a clear error (or, for a
  -- slot only kept for the collector, the right result), never a crash, a
  -- lost descriptor or a read outside a block.  Each scenario runs in a
  -- child luasock, so that a crash fails the test instead of the runner.
  local CHANGED = "internal state of a waiting call was changed"
  local PRELUDE = [[
local socket = require "socket"
-- spawn returns a Task; these scenarios reach into its coroutine, which
-- the task records here when it starts (a tail call: no frame is added).
local spawn = socket.spawn
function socket.spawn(f, ...)
  local task = {}
  spawn(function(...) task.co = coroutine.running(); return f(...) end, ...)
  return task
end
local function set(task, i, v)
  assert(debug.getlocal(task.co, 0, i), "no slot " .. i .. " in the waiting call")
  debug.setlocal(task.co, 0, i, v)
end
local function top(task)
  local n = 0
  while debug.getlocal(task.co, 0, n + 1) do n = n + 1 end
  return n
end
]]

  -- Run PRELUDE .. text in a child; returns its first n output lines (nil
  -- after a crash or a hang) once it exited with status 0.
  local function scenario(text, n)
    local c = support.start({ support.LUASOCK, support.temp_file(PRELUDE .. text) },
                            { stdin = "null" })
    local lines = {}
    for i = 1, n do lines[i] = c:line() end
    assert.equal(0, c:wait(), c:stderr())
    return lines, c:stderr()
  end

  -- The result line of socket.run when the waiting task raised CHANGED.
  local function assert_changed(line)
    assert.is_string(line)
    assert.matches("^false\t.*" .. CHANGED, line)
  end

  it("recv: the socket it waits on replaced by a number, a file or a string raises", function()
    -- after the wait the socket is checked again (a crash before)
    local out, err = scenario([[
local pairs_, tasks, bads = {}, {}, {42, io.stdout, "x"}
local function waiter(s) return s:recv(10) end
for i = 1, #bads do
  pairs_[i] = {socket.socketpair()}
  pairs_[i][1]:settimeout(2)
  tasks[i] = socket.spawn(waiter, pairs_[i][1])
end
socket.spawn(function()
  for i, bad in ipairs(bads) do
    set(tasks[i], 1, bad)
    pairs_[i][2]:send("x")
  end
end)
print(socket.run())
]], 1)
    assert.is_string(out[1])
    assert.matches("^false\t.*luasock.socket expected, got number", out[1])
    assert.matches("luasock.socket expected, got FILE*", err, 1, true)
    assert.matches("luasock.socket expected, got string", err, 1, true)
  end)

  it("accept: a new-socket slot holding a number raises", function()
    local out = scenario([[
local l = socket.socket(); l:settimeout(2); l:bind({"127.0.0.1", 0}); l:listen()
local c = socket.socket(); c:settimeout(2)
local co = socket.spawn(function() return l:accept() end)
socket.spawn(function() set(co, 3, 42); assert(c:connect(l:getsockname())) end)
print(socket.run())
]], 1)
    assert.is_string(out[1])
    assert.matches("^false\t.*bad argument #2 to 'accept' %(luasock.socket expected, got number%)", out[1])
  end)

  it("accept: an open socket put in that slot keeps its descriptor", function()
    local out = scenario([[
local l = socket.socket(); l:settimeout(2); l:bind({"127.0.0.1", 0}); l:listen()
local c = socket.socket(); c:settimeout(2)
local victim = socket.socket()
local fd = victim:fileno()
local co = socket.spawn(function() return l:accept() end)
socket.spawn(function() set(co, 3, victim); assert(c:connect(l:getsockname())) end)
print(socket.run())
print(victim:fileno() == fd)
]], 2)
    assert_changed(out[1])
    assert.equal("true", out[2])
  end)

  it("connect: the parsed address slot is checked before connect retries", function()
    local out = scenario([[
local path = os.tmpname(); os.remove(path)
local l = socket.socket(socket.AF_UNIX); l:settimeout(2); l:bind(path); l:listen(0)
local fillers = {}
repeat   -- a full backlog: a unix connect then waits and retries connect()
  local f = socket.socket(socket.AF_UNIX); f:settimeout(0)
  local ok = f:connect(path)
  if ok then fillers[#fillers + 1] = f else f:close() end
until not ok or #fillers > 64
local c = socket.socket(socket.AF_UNIX); c:settimeout(2)
local co = socket.spawn(function() return c:connect(path) end)
socket.spawn(function() set(co, 3, 42); l:accept():close() end)
print(socket.run())
os.remove(path)
]], 1)
    assert_changed(out[1])
  end)

  it("sendto: the parsed address slot is checked before sendto retries", function()
    local out = scenario([[
local path = os.tmpname(); os.remove(path)
local r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); r:settimeout(2); r:bind(path)
local s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s:settimeout(0)
repeat until not s:sendto("d", path)   -- r's queue is full: sendto waits
s:settimeout(2)
local co = socket.spawn(function() return s:sendto("last", path) end)
socket.spawn(function() set(co, 5, io.stdout); r:recv(10) end)
print(socket.run())
os.remove(path)
]], 1)
    assert_changed(out[1])
  end)

  it("recv: a buffer size that is no longer a size raises", function()
    local out = scenario([[
local a, b = socket.socketpair(); a:settimeout(2)
local co = socket.spawn(function() return a:recv(10) end)
socket.spawn(function() set(co, 2, "abc"); b:send("hello") end)
print(socket.run())
a, b = socket.socketpair(); a:settimeout(2)   -- the first one holds "hello"
socket.spawn(function() print(a:recv(10.0)) end)   -- a float size is still one
socket.spawn(function() b:send("hello") end)
print(socket.run())
]], 3)
    assert_changed(out[1])
    assert.same({ "hello", "true\tnil" }, { out[2], out[3] })
  end)

  it("sendall: a count of bytes sent outside the data raises", function()
    local out = scenario([[
local data = ("x"):rep(4 * 1024 * 1024)
for _, case in ipairs({{6, -100}, {6, 2^40}, {2, "short"}, {6, "n"}}) do
  local a, b = socket.socketpair(); a:settimeout(2); b:settimeout(2)
  local co = socket.spawn(function() return a:sendall(data) end)
  socket.spawn(function()
    set(co, case[1], case[2])
    repeat until not b:recv(65536, socket.MSG_DONTWAIT)   -- a turns writable
  end)
  print(socket.run())
  a:close(); b:close()
end
]], 4)
    for i = 1, 4 do assert_changed(out[i]) end
  end)

  it("recvmsg, recv_fds: only their own state block is used", function()
    local out = scenario([[
local a, b = socket.socketpair(); a:settimeout(2)
local co = socket.spawn(function() return socket.recv_fds(a, 10, 2) end)
socket.spawn(function() set(co, 7, 42); b:send("hello") end)
print(socket.run())
a, b = socket.socketpair(); a:settimeout(2)   -- a still holds "hello"
local c, d = socket.socketpair(); c:settimeout(0.5)
co = socket.spawn(function() return a:recvmsg(10) end)
local other = socket.spawn(function() return c:recvmsg(4000, 100) end)
socket.spawn(function() set(co, 7, select(2, debug.getlocal(other.co, 0, 7))); b:send("hello") end)
print(socket.run())
d:close()   -- d open until here: c waits (no end of stream)
]], 2)
    assert_changed(out[1])
    assert_changed(out[2])
  end)

  it("sendmsg: buffers whose slots were emptied stay alive and are sent", function()
    local out = scenario([[
local a, b = socket.socketpair(); a:settimeout(2); b:settimeout(2)
local fill = 0
while true do
  local n = a:send(("f"):rep(65536), socket.MSG_DONTWAIT)
  if not n then break end
  fill = fill + n
end
local sent
local co = socket.spawn(function() sent = assert(a:sendmsg({("y"):rep(100000)})) end)
socket.spawn(function()
  set(co, 8, nil); set(co, 2, nil)   -- the strings' only anchors on the stack
  collectgarbage(); collectgarbage()
  local junk = {}
  for i = 1, 50 do junk[i] = ("z"):rep(100000) end   -- reuses freed blocks
  local got, n = {}, 0
  while not sent or n < fill + sent do
    local s = assert(b:recv(65536)); got[#got + 1] = s; n = n + #s
  end
  print(sent > 0, table.concat(got):sub(fill + 1, fill + sent) == ("y"):rep(sent))
end)
print(socket.run())
]], 2)
    assert.equal("true\ttrue", out[1])
    assert.equal("true\tnil", out[2])
  end)

  it("sendmsg: ancillary data replaced while its address is resolved raises", function()
    support.needs("localhost")
    local out = scenario([[
local r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r:settimeout(2)
r:bind({"127.0.0.1", 0})
local s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s:settimeout(2)
for _, v in ipairs({("x"):rep(10), {1, 2, {}}}) do   -- read raw, then copied
  local co = socket.spawn(function()
    return s:sendmsg({"hi"}, {}, 0, {"localhost", r:getsockname()[2]})
  end)
  socket.spawn(function() set(co, 3, v) end)
  print(socket.run())
end
]], 2)
    assert_changed(out[1])
    assert.matches("^false\t.*ancillary data changed while sending", out[2])
  end)

  it("select: only its own set is used", function()
    local out = scenario([[
local a, b = socket.socketpair()
local co = socket.spawn(function() return socket.select({a}, {}, 2) end)
socket.spawn(function() set(co, 4, 42); b:send("x") end)
print(socket.run())
]], 1)
    assert_changed(out[1])
  end)

  it("stream read and write: the stream and the call's counts are checked", function()
    local out = scenario([[
local function try(mode, slots, body, wake)
  local a, b = socket.socketpair(); a:settimeout(2); b:settimeout(2)
  a:setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
  local f = a:makefile(mode)
  local co = socket.spawn(function() return body(f) end)
  socket.spawn(function()
    for i, v in pairs(slots) do set(co, i, v) end
    wake(b)
  end)
  print(socket.run())
  a:close(); b:close()
end
local function line(b) b:send("line\n") end
local function drain(b) b:recv(65536) end
try("r", {[1] = 42}, function(f) return f:read("l") end, line)
try("r", {[3] = 1000000, [5] = -1}, function(f) return f:read("l") end, line)
try("w", {[3] = -3}, function(f) return f:write(("w"):rep(1000000)) end, drain)
try("w", {[4] = 2^40}, function(f) return f:write(("w"):rep(1000000)) end, drain)
]], 4)
    for i = 1, 4 do assert_changed(out[i]) end
  end)

  it("resolver calls: only the request their helper thread filled is used", function()
    support.needs("localhost")
    -- a finished getaddrinfo's request (its list freed), kept by the script
    local out = scenario([[
local req
local g = socket.spawn(function() return socket.getaddrinfo("localhost", 80) end)
socket.spawn(function() req = select(2, debug.getlocal(g.co, 0, 1)) end)
assert(socket.run())
assert(type(req) == "userdata")
local function try(f)
  local co = socket.spawn(f)
  socket.spawn(function() set(co, top(co), req) end)
  print(socket.run())
end
try(function() return socket.gethostbyname("localhost") end)
local l = socket.socket(); l:settimeout(2); l:bind({"127.0.0.1", 0}); l:listen()
local c = socket.socket(); c:settimeout(2)
try(function() return c:connect({"localhost", l:getsockname()[2]}) end)
local g2 = socket.spawn(function() return socket.getnameinfo({"127.0.0.1", 80}, socket.NI_NUMERICHOST) end)
socket.spawn(function() req = select(2, debug.getlocal(g2.co, 0, 1)) end)
assert(socket.run())
try(function() return socket.getnameinfo({"::1", 80}, socket.NI_NUMERICHOST) end)   -- 127.0.0.1 before
]], 3)
    for i = 1, 3 do assert_changed(out[i]) end
  end)

  it("sleep: a deadline that is no longer a number raises", function()
    local out = scenario([[
for _, v in ipairs({0/0, "soon"}) do
  local co = socket.spawn(function() return socket.sleep(0.2) end)
  socket.spawn(function() set(co, 2, v) end)
  print(socket.run())
end
]], 2)
    assert_changed(out[1])
    assert_changed(out[2])
  end)
end)


-- sched_setlocal_spec: a call waiting in a task keeps nothing that
-- debug.setlocal can reach: its frame is empty while it waits, and junk put
-- in the locals of the function that called it changes nothing of what
-- the call does, nor does junk in socket.timeout's frame to its scope.
-- Never a crash, a lost descriptor or a read outside a block.
local socket = require "socket"
local support = require "tests.support"

describe("a waiting call whose state debug.setlocal changed", function()
  -- A call that may wait fills an operation record that its task owns
  -- while it waits (the Lua values it needs anchored there), and empties
  -- its stack before it yields.  Before, its state lived in C temporaries
  -- of the task's coroutine, which debug.setlocal(co, 0, i, v) could
  -- replace: each continuation had to check them again after the wait.
  -- Each scenario runs in a child luasock, so that a crash fails the test
  -- instead of the runner.
  local PRELUDE = [[
local socket = require "socket"
local function top(co)
  local n = 0
  while debug.getlocal(co, 0, n + 1) do n = n + 1 end
  return n
end
-- Run call() in a task and print its name and results; once it waits,
-- another task writes how many slots its call has, puts junk in every
-- local of the function that called it, collects garbage and wakes it.
local function case(name, call, wake)
  local co   -- the task's coroutine, where the call waits
  socket.spawn(function() co = coroutine.running(); print(name, call()) end)
  socket.spawn(function()
    io.write(top(co), " ")
    local i = 1
    while debug.getlocal(co, 1, i) do debug.setlocal(co, 1, i, 42); i = i + 1 end
    collectgarbage(); collectgarbage()
    wake()
  end)
  assert(socket.run())
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

  it("socket calls: a waiting call has no slot to change, and its caller's locals do not matter", function()
    -- accept, connect, recv, recvfrom, send, sendall and sendto keep their
    -- state in a record their task owns while they wait, and leave an
    -- empty frame: debug.setlocal finds nothing of the call (top is 0),
    -- and junk in every local of the function that called it changes
    -- nothing of what the call does.  Before, the call's state lived in
    -- stack slots that a script could replace: a crash, a lost descriptor
    -- or a read outside a block.
    local out = scenario([[
local a, b = socket.socketpair(); a:settimeout(2); b:settimeout(2)
case("recv", function() local s, n = a, 10; return s:recv(n) end,
     function() b:send("hello") end)
local u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u:settimeout(2)
u:bind({"127.0.0.1", 0})
case("recvfrom", function() local s, n = u, 10; local d, from = s:recvfrom(n); return d, from[1] end,
     function() a:close(); u:sendto("dgram", u:getsockname()) end)
local l = socket.socket(); l:settimeout(2); l:bind({"127.0.0.1", 0}); l:listen()
local c = socket.socket(); c:settimeout(2)
case("accept", function() local s = l; local conn = s:accept(); return conn:fileno() > 2 end,
     function() assert(c:connect(l:getsockname())) end)
local path = os.tmpname(); os.remove(path)
local ul = socket.socket(socket.AF_UNIX); ul:settimeout(2); ul:bind(path); ul:listen(0)
local fillers = {}
repeat   -- a full backlog: a unix connect then waits and retries connect()
  local f = socket.socket(socket.AF_UNIX); f:settimeout(0)
  local ok = f:connect(path)
  if ok then fillers[#fillers + 1] = f else f:close() end
until not ok or #fillers > 64
local uc = socket.socket(socket.AF_UNIX); uc:settimeout(2)
case("connect", function() local s, p = uc, path; return s:connect(p) end,
     function() ul:accept():close() end)
os.remove(path)
local r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); r:settimeout(2); r:bind(path)
local ds = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); ds:settimeout(0)
repeat until not ds:sendto("d", path)   -- r's queue is full: sendto waits
ds:settimeout(2)
case("sendto", function() local s, p = ds, path; return s:sendto("last", p) end,
     function() r:recv(10) end)
os.remove(path)
local data = ("x"):rep(4 * 1024 * 1024)
local x, y = socket.socketpair(); x:settimeout(2); y:settimeout(2)
local got = 0
case("sendall", function() local s, d = x, data; return s:sendall(d) end, function()
  while got < #data do got = got + #assert(y:recv(65536)) end
end)
print("received", got)
repeat until not x:send(("f"):rep(65536), socket.MSG_DONTWAIT)   -- x full: send waits
case("send", function() local s, d = x, "z"; return s:send(d) end,
     function() repeat until not y:recv(65536, socket.MSG_DONTWAIT) end)
]], 8)
    assert.same({
      "0 recv\thello", "0 recvfrom\tdgram\t127.0.0.1", "0 accept\ttrue",
      "0 connect\ttrue", "0 sendto\t4", "0 sendall\ttrue", "received\t4194304",
      "0 send\t1",
    }, out)
  end)

  it("the other calls: a waiting call has no slot to change, and its caller's locals do not matter", function()
    -- recvmsg, recv_fds, sendmsg (with a name to look up), select, stream
    -- read, write and close, the resolver calls, connect to a name and
    -- sleep, as above.  Before, each kept state in slots a script could
    -- replace: a crash, a freed buffer sent, another call's results.
    support.needs("localhost")
    local out = scenario([[
local noop = function() end
local a, b = socket.socketpair(); a:settimeout(2); b:settimeout(2)
case("recvmsg", function() local s, n = a, 10; return (s:recvmsg(n)) end,
     function() b:send("hello") end)
local z = socket.socket()
case("recv_fds", function() local s = a; local d, fds = socket.recv_fds(s, 10, 2); return d, #fds end,
     function() socket.send_fds(b, "fd", {z}) end)
local r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r:settimeout(2)
r:bind({"127.0.0.1", 0})
local u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u:settimeout(2)
case("sendmsg", function()
  local s, bufs, to = u, {("y"):rep(1000), "z"}, {"localhost", r:getsockname()[2]}
  return s:sendmsg(bufs, nil, 0, to)
end, noop)
print("sent", r:recv(2000) == ("y"):rep(1000) .. "z")
case("select", function() local rd = {a}; return #socket.select(rd, {}, 2) end,
     function() b:send("x") end)
a:recv(10)
local f = a:makefile("rw")
case("read", function() local ff = f; return ff:read("l", "n", 4) end,
     function() b:send("one\n42 two") end)
a:setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
f:setvbuf("no")
local got = 0
case("write", function() local ff, d = f, ("w"):rep(1000000); return ff:write(d, "!") == f end,
     function() while got < 1000001 do got = got + #assert(b:recv(65536)) end end)
print("received", got)
f:setvbuf("full", 2000000)
f:write(("c"):rep(1000000))   -- buffered: close has it to flush
got = 0
case("close", function() local ff = f; return ff:close() end,
     function() while got < 1000000 do got = got + #assert(b:recv(65536)) end end)
print("received", got)
case("getaddrinfo", function()
  local h = "localhost"; return socket.getaddrinfo(h, 80, socket.AF_INET)[1].address[1]
end, noop)
case("getnameinfo", function()
  local to = {"127.0.0.1", 80}; return socket.getnameinfo(to, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
end, noop)
local l = socket.socket(); l:settimeout(2); l:bind({"127.0.0.1", 0}); l:listen()
local c = socket.socket(); c:settimeout(2)
case("connect", function() local s, to = c, {"localhost", l:getsockname()[2]}; return s:connect(to) end, noop)
case("sleep", function() local t = 0.01; return socket.sleep(t) end, noop)
]], 15)
    assert.same({
      "0 recvmsg\thello", "0 recv_fds\tfd\t1", "0 sendmsg\t1001", "sent\ttrue",
      "0 select\t1", "0 read\tone\t42\t two", "0 write\ttrue", "received\t1000001",
      "0 close\ttrue", "received\t1000000", "0 getaddrinfo\t127.0.0.1",
      "0 getnameinfo\t127.0.0.1\t80", "0 connect\ttrue", "0 sleep\ttrue",
    }, out)
  end)

  it("a second wait on the same socket keeps it alive without anchoring it again", function()
    -- A task that waits on the socket its last wait anchored (a server's
    -- recv after recv) does not anchor it again: the Task still holds it.
    -- Here nothing else holds the socket: the second recv waits, the
    -- caller's locals are junked and garbage is collected twice; the
    -- socket must still be there and the recv get its data (a socket
    -- collected under the wait would close it: nil, "closed").
    local out = scenario([[
local a, b = socket.socketpair(); a:settimeout(2); b:settimeout(2)
local weak = setmetatable({a}, {__mode = "v"})
local co
socket.spawn(function(s)   -- an argument: nothing may collect it before the task runs
  co = coroutine.running()
  local first = s:recv(10)
  io.write(first, " ")
  local second = s:recv(10)
  print(second)
end, a)
a = nil
socket.spawn(function()
  b:send("one")
  socket.sleep(0)   -- the first recv returns, the second waits
  local i = 1
  while debug.getlocal(co, 1, i) do debug.setlocal(co, 1, i, 42); i = i + 1 end
  collectgarbage(); collectgarbage()
  io.write(tostring(weak[1] ~= nil), " ")
  b:send("two")
end)
assert(socket.run())
]], 1)
    assert.same({ "one true two" }, out)
  end)

  it("a deadline scope: its frame has no slot to change, and the scope is left as it should", function()
    -- socket.timeout kept its deadline and the to-be-closed guard that
    -- leaves the scope in C temporaries under fn, which debug.setlocal
    -- could replace: the guard's close then failed ("attempt to call a nil
    -- value") and the scope was never left, so the task's later waits all
    -- ended at its stale deadline.  Now fn runs under lua_pcallk with
    -- nothing below it, and the continuation finds the scope in the
    -- registry.
    local out = scenario([[
local a, b = socket.socketpair(); a:settimeout(2); b:settimeout(2)
local co
socket.spawn(function()
  co = coroutine.running()
  print("scope", socket.timeout(0.5, function() local s, n = a, 10; return s:recv(n) end))
  local t0 = socket.gettime()
  print("slept", socket.sleep(0.6), socket.gettime() - t0 >= 0.59)
end)
socket.spawn(function()
  io.write(top(co), " ")
  for level = 1, 2 do   -- fn, then socket.timeout's own frame
    local i = 1
    while debug.getlocal(co, level, i) do debug.setlocal(co, level, i, 42); i = i + 1 end
    io.write(i - 1, " ")
  end
  collectgarbage(); collectgarbage()
  b:send("hello")
end)
assert(socket.run())
]], 2)
    assert.same({ "0 2 0 scope\thello", "slept\ttrue\ttrue" }, out)
  end)
end)

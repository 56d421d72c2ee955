-- tests/repl_tasks_spec.lua: tasks spawned at the REPL's prompt, on a
-- real terminal (tests/pty_drive.py, as in repl_spec.lua): they serve
-- while the prompt waits and while a line blocks, Ctrl-C stops what runs
-- and spares the rest, and what they print goes above the prompt, which
-- is drawn again with the line being typed.
local support = require "tests.support"

local function session(steps)
  support.terminal(steps, support.temp_dir())
end

describe("tasks at the REPL's prompt", function()
  -- A listening socket srv at the prompt, its port in PORT for shell steps.
  local LISTENER = [[
expect > 
send srv = socket.create_server({"127.0.0.1", 0})\r
expect \n> 
send print("port=" .. srv:getsockname().port)\r
capture PORT port=(\d+)
expect \n> 
]]

  -- Every wait outside a task (the prompt waiting for a key, a line
  -- blocked in recv) turns the loop.  Had the prompt or the line blocked
  -- alone, the echo task would never answer: the clients below time out
  -- (2 s) and the expected lines never come.
  local ECHO_SERVER = LISTENER .. [[
send function echo(c) c:settimeout(2) c:sendall(c:recv(100)) c:close() end\r
expect \n> 
send function serve() while true do echo(srv:accept()) end end\r
expect \n> 
send task = socket.spawn(serve)\r
expect \n> 
]]

  -- A later line of the same session is a client of the task.
  local ECHO_FROM_REPL = [[
send c = socket.create_connection({"127.0.0.1", PORT}, 2)\r
expect \n> 
send c:sendall("hello") print("got", c:recv(100)) c:close()\r
expect \ngot\thello\n> 
]]

  -- A client that is no part of the REPL (socat), while it waits for a key.
  local ECHO_FROM_SOCAT = [[
sleeping
shell test "$(printf ping | socat -t2 - TCP:127.0.0.1:$PORT)" = ping
]]

  it("serves from a task spawned at the prompt, to a later line and to socat", function()
    session(ECHO_SERVER .. [[
send PORT = srv:getsockname().port\r
expect \n> 
]] .. ECHO_FROM_REPL .. ECHO_FROM_SOCAT .. ECHO_FROM_SOCAT .. [[
send task:status()\r
expect \nwaiting\n> 
send task\r
capture TASKLINE \n(task 0x[0-9a-f]+: waiting to read fd \d+ in accept on socket \(fd \d+, AF_INET, SOCK_STREAM)
expect \n> 
send #socket.tasks(), socket.tasks()[1] == task\r
expect \n1\ttrue\n> 
send \x04
exit 0
]])
  end)

  -- The Ctrl-C waits until luasock sleeps again after socat's echo: socat
  -- ends as the task closes its connection, and a Ctrl-C that came while
  -- the task still ran stopped that task (as it should), so the test
  -- failed now and then on a loaded machine.
  it("Ctrl-C during a blocking line returns the prompt; the task still serves", function()
    session(ECHO_SERVER .. [[
send PORT = srv:getsockname().port\r
expect \n> 
send a, b = socket.socketpair() print("waiting") print(a:recv(10))\r
expect \nwaiting\n
sleeping
]] .. ECHO_FROM_SOCAT .. [[
sleeping
send \x03
screen waiting\n^Cinterrupted!\n> 
]] .. ECHO_FROM_REPL .. ECHO_FROM_SOCAT .. [[
send print("run:", socket.run())\r
sleeping
]] .. ECHO_FROM_SOCAT .. [[
sleeping
send \x03
expect interrupted!
expect \n> 
]] .. ECHO_FROM_REPL .. [[
send \x04
exit 0
]])
  end)

  it("Ctrl-C stops a task spinning while the prompt waits; the others go on", function()
    session(ECHO_SERVER .. [[
send PORT = srv:getsockname().port\r
expect \n> 
send spin = socket.spawn(function() print("spinning") while true do end end)\r
expect \n> 
expect spinning\n
send \x03
expect error in task: 
expect interrupted!
expect stack traceback:
expect \n> 
send spin:status()\r
expect \nfailed\n> 
]] .. ECHO_FROM_REPL .. ECHO_FROM_SOCAT .. [[
send \x04
exit 0
]])
  end)

  -- Output of a task while the prompt waited landed after the "> " and the
  -- half-typed line, which was not redrawn: the user typed on a bare line.
  -- Now the line is cleared, the output printed, and the prompt and the
  -- line drawn again below it, the cursor where it was; what is typed next
  -- continues the same line.
  local GREETER = LISTENER .. [[
send function greet(c) local m = c:recv(100) c:close() return m end\r
expect \n> 
send function fail(m) if m == "fail" then error("task failed") end end\r
expect \n> 
send function serve(c) local m = greet(c) fail(m) print("hello, " .. m) end\r
expect \n> 
send function warn(c) io.stderr:write("a warning\\n") serve(c) end\r
expect \n> 
send t = socket.spawn(function() while true do warn(srv:accept()) end end)\r
expect \n> 
]]

  it("redraws the prompt and the half-typed line below a task's output", function()
    session(GREETER .. [[
send x = "half
screen > x = "half
sleeping
shell printf socat | socat -t2 - TCP:127.0.0.1:$PORT
screen > t = socket.spawn(function() while true do warn(srv:accept()) end end)\na warning\nhello, socat\n> x = "half
send way"\r
expect \n> 
send x\r
screen > x = "halfway"\n> x\nhalfway\n> 
send \x04
exit 0
]])
  end)

  it("redraws the continuation prompt below a task's error report", function()
    session(GREETER .. [[
send if x == nil then\r
expect \n>> 
send y = "cont
screen >> y = "cont
sleeping
shell printf fail | socat -t2 - TCP:127.0.0.1:$PORT
expect luasock: error in task: stdin:1: task failed\nstack traceback:\n
screen >> y = "cont
send inued" end\r
expect \n> 
send y\r
screen > y\ncontinued\n> 
send \x04
exit 0
]])
  end)
end)

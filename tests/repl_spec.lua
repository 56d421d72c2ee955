-- tests/repl_spec.lua: the REPL on a real terminal.  Each session runs
-- luasock under tests/pty_drive.py (a pseudo-terminal; HOME is a fresh
-- temporary directory, TERM=dumb so readline writes no escape codes) and
-- follows a list of steps: type this, wait for that output (each wait has
-- a time limit), expect this exit status.  Nothing sleeps.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests"

local support = require "tests.support"
local DRIVER = support.absolute(here .. "/pty_drive.py")

local home

-- Run one terminal session; steps is the driver's step list (see
-- tests/pty_drive.py).  Fails the test with the transcript if a step fails.
local function session(steps)
  local r = support.run({ "python3", DRIVER, support.write_file(home .. "/steps", steps), "--",
                          support.LUASOCK }, { env = { HOME = home, TERM = "dumb" },
                                              stderr = "out", limit = 60 })
  assert(r.out:match("^ok\n"), r.out)
end

-- The entries of the history file (timestamps start them).
local function history_entries()
  local entries = {}
  for entry in (support.read_file(home .. "/.luasock_history") or ""):gmatch("#%d+\n([^#]*)\n") do
    entries[#entries + 1] = entry
  end
  return entries
end

describe("the REPL on a terminal", function()
  before_each(function() home = support.temp_dir() end)

  it("shows the banner and the prompt, prints values, leaves on Ctrl-D with status 0", function()
    session([[
expect luasock 
expect Lua 5.4
expect \n> 
send 1+1\r
expect \n2\n> 
send = 6 * 7, "x", nil\r
expect \n42\tx\tnil\n> 
send \x04
exit 0
]])
  end)

  it("reads a multi-line function definition with the continuation prompt", function()
    session([[
expect > 
send function twice(x)\r
expect \n>> 
send   return x * 2\r
expect \n>> 
send end\r
expect \n> 
send twice(21)\r
expect \n42\n> 
send \x04
exit 0
]])
  end)

  it("has socket as a global table", function()
    session([[
expect > 
send type(socket), socket.AF_INET, type(socket.socket)\r
expect \ntable\t2\tfunction\n> 
send \x04
exit 0
]])
  end)

  it("prints errors with a traceback and goes on", function()
    session([[
expect > 
send error("oops")\r
expect \nstdin:1: oops\nstack traceback:
expect \n> 
send x = = 1\r
expect unexpected symbol near '='
expect \n> 
send 2+2\r
expect \n4\n> 
send \x04
exit 0
]])
  end)

  it("honours _PROMPT and _PROMPT2", function()
    session([[
expect > 
send _PROMPT = "sock> " _PROMPT2 = "...> "\r
expect \nsock> 
send do\r
expect \n...> 
send end\r
expect \nsock> 
send \x04
exit 0
]])
  end)

  it("writes the history to ~/.luasock_history and recalls it with Up in a new session", function()
    session([[
expect > 
send print("hist" .. 40 + 2)\r
expect \nhist42\n> 
send function three()\r
expect >> 
send return 3 end\r
expect \n> 
send \x04
exit 0
]])
    assert.are.same({ 'print("hist" .. 40 + 2)', "function three()\nreturn 3 end" },
                    history_entries())
    session([[
expect > 
send \x1b[A\x1b[A
expect print("hist" .. 40 + 2)
send \r
expect \nhist42\n> 
send \x1b[A\x1b[A\r
expect \n> 
send three()\r
expect \n3\n> 
send \x04
exit 0
]])
    local entries = history_entries()
    assert.are.equal(5, #entries)
    assert.are.equal("three()", entries[5])
  end)

  it("keeps the history file bounded (1000 entries)", function()
    local lines = {}
    for i = 1, 1200 do lines[#lines + 1] = "#1700000000\nx = " .. i end
    support.write_file(home .. "/.luasock_history", table.concat(lines, "\n") .. "\n")
    session([[
expect > 
send 1\r
expect \n1\n> 
send \x04
exit 0
]])
    local entries = history_entries()
    assert.are.equal(1001, #entries)
    assert.are.equal("x = 201", entries[1])
    assert.are.equal("1", entries[1001])
  end)

  it("Ctrl-C interrupts a running statement; the prompt comes back and works", function()
    session([[
expect > 
send print("spinning") while true do end\r
expect \nspinning\n
send \x03
screen spinning\n^Cinterrupted!\n> 
send 5+5\r
expect \n10\n> 
send \x04
exit 0
]])
  end)

  -- Ctrl-C printed "interrupted!" with a traceback every time: news of
  -- where the statement was stopped, to the user who just stopped it.  A
  -- statement stopped by Ctrl-C now reports the one line (the ^C is the
  -- terminal's echo).
  it("Ctrl-C interrupts a statement blocked in a socket wait: one line, no traceback", function()
    session([[
expect > 
send local a, b = socket.socketpair() print("waiting") print(a:recv(10))\r
expect \nwaiting\n
sleeping
send \x03
screen waiting\n^Cinterrupted!\n> 
send 6+6\r
expect \n12\n> 
send \x04
exit 0
]])
  end)

  it("Ctrl-C at the prompt drops the line being typed, also a continuation", function()
    session([[
expect > 
send print("never")
expect print("never")
send \x03
expect ^C\n> 
send if true then\r
expect \n>> 
send \x03
expect ^C\n> 
send 7+7\r
expect \n14\n> 
send \x04
exit 0
]])
    assert.are.same({ "7+7" }, history_entries())
  end)

  -- Tasks at the prompt: every wait outside a task (the prompt waiting for
  -- a key, a line blocked in recv) turns the loop.  Had the prompt or the
  -- line blocked alone, the echo task would never answer: the clients
  -- below time out (2 s) and the expected lines never come.
  -- A listening socket srv at the prompt, its port in PORT for shell steps.
  local LISTENER = [[
expect > 
send srv = socket.create_server({"127.0.0.1", 0})\r
expect \n> 
send print("port=" .. srv:getsockname().port)\r
capture PORT port=(\d+)
expect \n> 
]]

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
send coroutine.status(task)\r
expect \nsuspended\n> 
send \x04
exit 0
]])
  end)

  it("Ctrl-C during a blocking line returns the prompt; the task still serves", function()
    session(ECHO_SERVER .. [[
send PORT = srv:getsockname().port\r
expect \n> 
send a, b = socket.socketpair() print("waiting") print(a:recv(10))\r
expect \nwaiting\n
sleeping
]] .. ECHO_FROM_SOCAT .. [[
send \x03
screen waiting\n^Cinterrupted!\n> 
]] .. ECHO_FROM_REPL .. ECHO_FROM_SOCAT .. [[
send print("run:", socket.run())\r
sleeping
]] .. ECHO_FROM_SOCAT .. [[
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
send coroutine.status(spin)\r
expect \ndead\n> 
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

  it("shows a statement's output that ends mid-line before the next prompt", function()
    session([[
expect > 
send do io.write("no newline") end\r
screen > do io.write("no newline") end\nno newline> 
send do io.stderr:write("to stderr") end\r
screen no newline> do io.stderr:write("to stderr") end\nto stderr> 
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

  it("Ctrl-D in an unfinished statement reports it, then leaves on the next Ctrl-D", function()
    session([[
expect > 
send function g()\r
expect \n>> 
send \x04
expect 'end' expected
expect \n> 
send \x04
exit 0
]])
  end)
end)

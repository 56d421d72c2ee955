-- tests/repl_spec.lua: the REPL on a real terminal.  Each session runs
-- luasock under tests/pty_drive.py (a pseudo-terminal; HOME is a fresh
-- temporary directory, TERM=dumb so readline writes no escape codes) and
-- follows a list of steps: type this, wait for that output or screen (each
-- wait has a time limit), expect this exit status.  Nothing sleeps.  Tasks
-- at the prompt: repl_tasks_spec.lua.
local support = require "tests.support"

local home

-- Run one terminal session; steps is the driver's step list.
local function session(steps)
  support.terminal(steps, home)
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

-- tests/host_spec.lua: the luasock command line, compared with lua5.4's
-- case by case.  Both programs run with the same arguments, environment,
-- stdin and working directory (a temporary one); their stdout, stderr
-- (program name replaced by PROG, version line by lua5.4's) and exit
-- status must be equal.  Each case also checks what it expects, so that
-- two programs failing alike cannot pass.  Every run is under `timeout 10`.
local LUA = "lua5.4"

local support = require "tests.support"
local LUASOCK = support.LUASOCK
local write_file = support.write_file

local tmp

local function ends_with(s, suffix)
  return s:sub(-#suffix) == suffix
end

-- Replace every occurrence of the program's name by PROG, and luasock's
-- version line by lua5.4's.
local function normalise(text, prog)
  local i = 1
  local parts = {}
  while true do
    local s, e = text:find(prog, i, true)
    if not s then break end
    parts[#parts + 1] = text:sub(i, s - 1) .. "PROG"
    i = e + 1
  end
  parts[#parts + 1] = text:sub(i)
  return (table.concat(parts):gsub("luasock %d+%.%d+  Lua", "Lua"))
end

-- Run prog with args (a list); opts: stdin (text), env (table), cwd, raw
-- (no normalising), limit (seconds, default 10).
-- Returns { out, err, status = "exit N" / "signal N" }.
local function run(prog, args, opts)
  opts = opts or {}
  local env = { LUA_INIT = false, LUA_INIT_5_4 = false, LUA_PATH = false, LUA_PATH_5_4 = false,
                HOME = tmp }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local r = support.run({ prog, table.unpack(args) },
                        { stdin = opts.stdin, env = env, cwd = opts.cwd or tmp,
                          limit = opts.limit })
  local out, err = r.out, r.err
  if not opts.raw then out, err = normalise(out, prog), normalise(err, prog) end
  return { out = out, err = err, status = r.how .. " " .. r.code }
end

-- Run both programs; they must agree.  Returns luasock's result.
local function same(args, opts)
  local want = run(LUA, args, opts)
  local got = run(LUASOCK, args, opts)
  assert.are.same(want, got)
  return got
end

-- Lua 5.4.7's lua.c (Debian 13's lua5.4) answers a bare "--" with "not
-- enough memory": it sizes the arg table from a script index one past the
-- arguments.  5.4.4 to 5.4.6 run stdin, as the manual says and luasock
-- does; luasock is held to that, and to lua5.4 where it agrees.
local function bare_dashes_broken()
  return run(LUA, { "--" }, { stdin = "" }).err:find("not enough memory", 1, true) ~= nil
end

local ARGDUMP = [[
local t = {}
for i = -5, #arg do t[#t + 1] = i .. "=" .. tostring(arg[i]) end
print(table.concat(t, " "))
print("varargs", select("#", ...), ...)
]]

describe("luasock's command line, against lua5.4's", function()
  before_each(function()
    tmp = support.temp_dir()
    write_file(tmp .. "/args.lua", ARGDUMP)
    write_file(tmp .. "/mod.lua", 'return { name = "mod", n = (... or "?") }')
    write_file(tmp .. "/boom.lua", 'local function inner() error("boom") end\n'
      .. 'local function outer() inner() end\nouter()\n')
    write_file(tmp .. "/init.lua", 'print("init from file") x = 7\n')
    write_file(tmp .. "/-", 'print("the file named -")\n')
  end)

  it("runs a script with its arguments: arg[0], positive and negative indices, ...", function()
    local r = same({ "args.lua", "a", "b c" })
    assert.are.equal("exit 0", r.status)
    assert.matches("-1=PROG 0=args.lua 1=a 2=b c\n", r.out, 1, true)
    assert.matches("varargs\t2\ta\tb c", r.out, 1, true)
  end)

  it("puts the interpreter and its options at negative indices", function()
    local r = same({ "-W", "-e", "x=1", "args.lua", "-e", "z" })
    assert.matches("-4=PROG -3=-W -2=-e -1=x=1 0=args.lua 1=-e 2=z", r.out, 1, true)
  end)

  it("without a script, arg[0] is the interpreter", function()
    local r = same({ "-e", "print(arg[0], arg[1], arg[2], arg[-1])" })
    assert.are.equal("PROG\t-e\tprint(arg[0], arg[1], arg[2], arg[-1])\tnil\n", r.out)
  end)

  it("-e runs statements in order, also with the code glued to the option", function()
    local r = same({ "-e", "x = 1", "-eprint(x + 1)", "-e", "print(x + 2)" })
    assert.are.same({ "2\n3\n", "exit 0" }, { r.out, r.status })
  end)

  it("-e with a syntax error stops with status 1", function()
    local r = same({ "-e", "x = = 1", "-e", "print('not reached')" })
    assert.are.equal("exit 1", r.status)
    assert.matches("^PROG: %(command line%):1: unexpected symbol near '='", r.err)
  end)

  it("-l mod requires mod into global mod, in order with -e", function()
    local r = same({ "-e", "print(mod)", "-l", "mod", "-e", "print(mod.name, mod.n)" },
                   { env = { LUA_PATH = "./?.lua" } })
    assert.are.equal("nil\nmod\tmod\n", r.out)
  end)

  it("-l g=mod requires mod into global g", function()
    local r = same({ "-lm=mod", "-e", "print(m.name, mod)" }, { env = { LUA_PATH = "./?.lua" } })
    assert.are.equal("mod\tnil\n", r.out)
  end)

  it("-l of a missing module reports the searched places, status 1", function()
    local r = same({ "-l", "no_such_mod" }, { env = { LUA_PATH = "./?.lua" } })
    assert.are.equal("exit 1", r.status)
    assert.matches("module 'no_such_mod' not found", r.err, 1, true)
  end)

  it("-v prints the version; -v alone does not read stdin", function()
    local r = same({ "-v" }, { stdin = "print('stdin ran')" })
    assert.matches("^Lua 5%.4%.%d+  Copyright", r.out)
    assert.not_matches("stdin ran", r.out)
    same({ "-v", "-e", "print(1)" })
  end)

  it("-W turns warnings on; without it warn() is silent", function()
    local r = same({ "-W", "-e", "warn('hot', 'ter')" })
    assert.are.equal("Lua warning: hotter\n", r.err)
    r = same({ "-e", "warn('quiet')" })
    assert.are.equal("", r.err)
  end)

  it("-- ends the options: the next word is the script even if it is '-'", function()
    local r = same({ "--", "args.lua", "-v" })
    assert.matches("0=args.lua 1=-v", r.out, 1, true)
    r = same({ "--", "-" }, { stdin = "print('from stdin')" })
    assert.are.equal("the file named -\n", r.out)
  end)

  it("-- with nothing after it runs stdin", function()
    local opts = { stdin = "print('from stdin', ...)" }
    local r = bare_dashes_broken() and run(LUASOCK, { "--" }, opts) or same({ "--" }, opts)
    assert.are.same({ out = "from stdin\n", err = "", status = "exit 0" }, r)
  end)

  it("- runs the script from stdin with its arguments", function()
    local r = same({ "-", "a", "b" }, { stdin = ARGDUMP })
    assert.matches("-1=PROG 0=- 1=a 2=b", r.out, 1, true)
    assert.matches("varargs\t2\ta\tb", r.out, 1, true)
  end)

  it("with no argument and stdin not a terminal, runs stdin", function()
    local r = same({}, { stdin = "print(1 + 1)" })
    assert.are.same({ "2\n", "exit 0" }, { r.out, r.status })
    -- lua5.4 ignores the status of this chunk: so do we
    r = same({}, { stdin = "error('in stdin')" })
    assert.matches("PROG: stdin:1: in stdin", r.err, 1, true)
  end)

  it("runs LUA_INIT before the options", function()
    local r = same({ "-e", "print(x)" }, { env = { LUA_INIT = "print('init') x = 3" } })
    assert.are.equal("init\n3\n", r.out)
  end)

  it("prefers LUA_INIT_5_4 to LUA_INIT", function()
    local r = same({ "-e", "print(x)" },
                   { env = { LUA_INIT = "x = 1", LUA_INIT_5_4 = "x = 2" } })
    assert.are.equal("2\n", r.out)
  end)

  it("runs LUA_INIT=@file as a file", function()
    local r = same({ "-e", "print(x)" }, { env = { LUA_INIT = "@init.lua" } })
    assert.are.equal("init from file\n7\n", r.out)
  end)

  it("stops with status 1 when LUA_INIT fails", function()
    local r = same({ "-e", "print('not reached')" }, { env = { LUA_INIT = "error('bad init')" } })
    assert.are.equal("exit 1", r.status)
    assert.matches("^PROG: LUA_INIT:1: bad init\nstack traceback:", r.err)
    r = same({ "-e", "print(1)" }, { env = { LUA_INIT = "@no_such_file.lua" } })
    assert.matches("cannot open no_such_file.lua", r.err, 1, true)
  end)

  it("-E ignores LUA_INIT and LUA_PATH", function()
    local env = { LUA_INIT = "print('init ran')", LUA_PATH = "/nowhere/?.lua" }
    local r = same({ "-E", "-e", "print(package.path:find('nowhere', 1, true))" }, { env = env })
    assert.are.equal("nil\n", r.out)
    r = same({ "-e", "print(package.path)" }, { env = env })
    assert.are.equal("init ran\n/nowhere/?.lua\n", r.out)
  end)

  it("reports an uncaught error with a traceback and status 1", function()
    local r = same({ "boom.lua" })
    assert.are.equal("exit 1", r.status)
    assert.matches("^PROG: boom.lua:1: boom\nstack traceback:\n", r.err)
    assert.matches("in upvalue 'inner'", r.err, 1, true)
  end)

  it("reports error objects that are not strings", function()
    local r = same({ "-e", "error({})" })
    assert.matches("^PROG: %(error object is a table value%)", r.err)
    r = same({ "-e", "error(setmetatable({}, {__tostring = function() return 'custom' end}))" })
    assert.are.same({ "PROG: custom\n", "exit 1" }, { r.err, r.status })
  end)

  it("passes os.exit codes through", function()
    assert.are.equal("exit 3", same({ "-e", "os.exit(3)" }).status)
    assert.are.equal("exit 1", same({ "-e", "os.exit(false)" }).status)
    assert.are.equal("exit 0", same({ "-e", "os.exit(true)" }).status)
    assert.are.equal("exit 5", same({ "-e", "os.exit(5, true)" }).status)
  end)

  it("prints the usage message and status 1 for a bad option", function()
    for _, bad in ipairs({ { "-x" }, { "-vx" }, { "--x" }, { "-E1" }, { "-e" }, { "-l" },
                           { "-e", "-v" } }) do
      local r = same(bad)
      assert.are.equal("exit 1", r.status)
      assert.matches("usage: PROG [options] [script [args]]", r.err, 1, true)
    end
    assert.matches("^PROG: unrecognized option '%-x'", same({ "-x" }).err)
    assert.matches("^PROG: '%-e' needs argument", same({ "-e" }).err)
  end)

  it("reports a missing script file with status 1", function()
    local r = same({ "no_such_script.lua" })
    assert.are.equal("exit 1", r.status)
    assert.matches("^PROG: cannot open no_such_script%.lua", r.err)
  end)

  it("-i with piped stdin reads statements as lua5.4 -i does, prompts included", function()
    local input = "x = 40\nx + 2\n= x\nfunction f(a)\nreturn a * 2\nend\nf(21)\n"
      .. "error('oops')\nprint('after', 1, nil)\n"
    local r = same({ "-i" }, { stdin = input })
    assert.matches("^Lua 5%.4", r.out)
    assert.matches("> x + 2\n42\n", r.out, 1, true)
    assert.matches(">> end\n> f(21)\n42\n", r.out, 1, true)
    assert.matches("^stdin:1: oops\nstack traceback:", r.err)
    assert.are.equal("exit 0", r.status)
    -- only a terminal session keeps a history file
    assert.is_nil(io.open(tmp .. "/.luasock_history"))
  end)

  it("-i after a script and -e keeps their globals", function()
    local r = same({ "-e", "y = 5", "-i", "args.lua" }, { stdin = "y * 2\n" })
    assert.is_true(ends_with(r.out, "> y * 2\n10\n> \n"), r.out)
  end)

  it("-i on an incomplete statement at end of input reports the syntax error", function()
    -- Deliberate difference: lua5.4 prints "(null)" on stderr here.
    local r = run(LUASOCK, { "-i" }, { stdin = "function f()\n" })
    assert.is_true(ends_with(r.out, "> function f()\n>> > \n"), r.out)
    assert.are.same({ "stdin:1: 'end' expected near <eof>\n", "exit 0" }, { r.err, r.status })
  end)

  it("programs started by os.execute get the default SIGPIPE (nothing ignored)", function()
    local r = same({ "-e", "os.execute('grep ^SigIgn /proc/self/status')" })
    assert.matches("^SigIgn:%s+%x+\n$", r.out)
  end)

  it("Ctrl-C (SIGINT) ends a running script with 'interrupted!' and status 1", function()
    write_file(tmp .. "/spin.lua", 'local pid = io.open("/proc/self/stat"):read("n")\n'
      .. 'io.popen("kill -INT " .. pid):close()\nwhile true do end\n')
    -- Where the signal lands (in popen, close or the loop) is a matter of
    -- timing, so the traceback's frames may differ: compare the rest.
    for _, prog in ipairs({ LUA, LUASOCK }) do
      local r = run(prog, { "spin.lua" })
      assert.are.same({ "", "exit 1" }, { r.out, r.status })
      assert.matches("^PROG: [^\n]*interrupted!\nstack traceback:\n", r.err)
    end
  end)
end)

describe("luasock's own additions", function()
  before_each(function() tmp = support.temp_dir() end)

  it("a script in another directory requires socket and the bundled modules", function()
    write_file(tmp .. "/uses.lua", [[
local socket = require "socket"
assert(package.preload["luasock.create"], "luasock.create is not preloaded")
require "luasock.create"
local s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
print(type(socket), socket.AF_INET == 2, s:fileno() >= 0)
s:close()
print(socket == require "socket", rawget(_G, "socket"))
]])
    local r = run(LUASOCK, { "uses.lua" })
    assert.are.same({ "table\ttrue\ttrue\ntrue\tnil\n", "", "exit 0" },
                    { r.out, r.err, r.status })
  end)

  it("require 'luasock', the name lua5.4 knows the module by, gives the same table", function()
    local r = run(LUASOCK, { "-e", "local l = require 'luasock' print(l == require 'socket', l.AF_INET)"
                                   .. " print(type(require('luasock.ssl').SSLContext))" })
    assert.are.same({ "true\t2\nfunction\n", "", "exit 0" }, { r.out, r.err, r.status })
  end)

  it("-l socket works like any module", function()
    local r = run(LUASOCK, { "-l", "socket", "-e", "print(type(socket.socket))" })
    assert.are.same({ "function\n", "exit 0" }, { r.out, r.status })
  end)

  it("the REPL (-i) has the socket global; scripts do not", function()
    local r = run(LUASOCK, { "-e", "print(rawget(_G, 'socket'))", "-i" },
                  { stdin = "type(socket), socket.AF_INET\n" })
    assert.matches("^nil\n", (r.out:gsub("^[^\n]*\n", "")))
    assert.matches("table\t2\n", r.out, 1, true)
  end)

  it("-h and --help print lua5.4's usage, luasock's options and where to read on; status 0", function()
    local lua_usage = run(LUA, { "-x" }).err:gsub("^[^\n]*\n", "")   -- after "unrecognized..."
    assert.matches("^usage: PROG %[options%]", lua_usage)
    for _, args in ipairs({ { "-h" }, { "--help" }, { "-W", "-e", "print('ran')", "-h", "x.lua" } }) do
      local r = run(LUASOCK, args)
      assert.are.same({ "", "exit 0" }, { r.err, r.status })
      assert.are.equal(lua_usage, r.out:sub(1, #lua_usage))
      assert.matches("-h, --help", r.out, 1, true)
      assert.matches("--version", r.out, 1, true)
      assert.matches("REPL", r.out, 1, true)
      assert.matches("man luasock", r.out, 1, true)
      assert.matches("README and example scripts: ", r.out, 1, true)
      assert.not_matches("ran", r.out, 1, true)
    end
    assert.are.equal("exit 1", run(LUA, { "--help" }).status)   -- our own addition
  end)

  it("--version prints the version line and runs nothing; status 0", function()
    local r = run(LUASOCK, { "--version", "-e", "print('ran')" },
                  { stdin = "print('stdin ran')", raw = true })
    assert.are.same({ "", "exit 0" }, { r.err, r.status })
    assert.matches("^luasock %d+%.%d+  Lua 5%.4%.%d+  Copyright[^\n]*\n$", r.out)
    assert.are.equal("exit 1", run(LUA, { "--version" }).status)
  end)

  it("handles every other option, and -h or --help after the script, as lua5.4 does", function()
    write_file(tmp .. "/args.lua", ARGDUMP)
    local cases = { { "-help" }, { "-hv" }, { "--he" }, { "--helpx" }, { "--versions" },
                    { "--Help" }, { "-V" }, { "args.lua", "-h", "--help", "--version" },
                    { "--", "-h" }, { "-e", "print(1)", "--", "--help" } }
    if not bare_dashes_broken() then table.insert(cases, { "--" }) end
    for c in ("abcdfgjkmnopqrstuwxyzABCDFGHIJKLMNOPQRSTUVXYZ"):gmatch(".") do
      cases[#cases + 1] = { "-" .. c }
    end
    -- One shell runs every case in turn (a run each would take seconds);
    -- a sanitized luasock starts slowly, hence the generous limit, and its
    -- leak check at exit (which the bad-option test above keeps) would
    -- double the time.
    local script = {}
    for _, args in ipairs(cases) do
      for i, a in ipairs(args) do args[i] = support.quote(a) end
      local words = table.concat(args, " ")
      script[#script + 1] = ('echo "== %s"; "$0" %s 2>&1; echo "status $?"'):format(words:gsub("[\"$`\\]", "\\%0"), words)
    end
    script = table.concat(script, "\n")
    local opts = { raw = true, limit = 90, env = { ASAN_OPTIONS = "detect_leaks=0" } }
    local want = normalise(run("sh", { "-c", script, LUA }, opts).out, LUA)
    local got = normalise(run("sh", { "-c", script, LUASOCK }, opts).out, LUASOCK)
    assert.are.equal(#cases, select(2, got:gsub("\nstatus %d+", "")))
    assert.are.equal(want, got)
  end)

  it("the man page renders without warnings and documents every option --help lists", function()
    local page = support.run({ "pwd" }).out:match("[^\n]+") .. "/docs/luasock.1"
    assert.is_truthy(io.open(page), "no " .. page)
    for _, check in ipairs({ "groff -ww -z -man", "mandoc -T lint -W warning" }) do
      local r = run("sh", { "-c", check .. " " .. support.quote(page) .. " 2>&1" }, { raw = true })
      assert.are.same({ "", "exit 0" }, { r.out, r.status }, check)
    end
    local text = run("sh", { "-c", "groff -man -T ascii -P -cbou " .. support.quote(page) },
                     { raw = true }).out
    assert.matches("THE REPL", text, 1, true)
    local help = run(LUASOCK, { "--help" }).out
    local options = 0
    for option in help:gmatch("\n  (%-%S*)") do
      options = options + 1
      assert.matches("\n%s+" .. option:gsub("%p", "%%%0"), text, nil, option)
    end
    assert.is_true(options >= 11, "options found in --help: " .. options)
  end)

  it("-v names luasock", function()
    local r = run(LUASOCK, { "-v" }, { raw = true })
    assert.matches("^luasock %d+%.%d+  Lua 5%.4%.%d+  Copyright", r.out)
    assert.are.equal("exit 0", r.status)
  end)

  it("a write to a closed pipe gives EPIPE, not death by SIGPIPE", function()
    local r = run("sh", { "-c", '("$0" -e "$1"; echo status=$? >&2) | head -1', LUASOCK,
      "io.stdout:setvbuf('no') for i = 1, 200000 do "
      .. "local ok, err, code = io.stdout:write('x\\n') "
      .. "if not ok then io.stderr:write(err, ' ', code, '\\n') os.exit(7) end end" }, { raw = true })
    assert.are.same({ "x\n", "Broken pipe 32\nstatus=7\n" }, { r.out, r.err })
  end)

  it("Ctrl-C interrupts a script blocked in a socket wait", function()
    -- A watcher sends SIGINT once the process sleeps (state S), that is,
    -- once it waits in recv.
    write_file(tmp .. "/wait.lua", [[
local socket = require "socket"
local a, b = socket.socketpair()
local pid = io.open("/proc/self/stat"):read("n")
local watcher = io.popen(("while [ \"$(cut -d' ' -f3 /proc/%d/stat)\" != S ]; do :; done; "
  .. "kill -INT %d"):format(pid, pid))
print("recv", a:recv(10))
]])
    local r = run(LUASOCK, { "wait.lua" })
    assert.are.equal("exit 1", r.status)
    assert.matches("interrupted!", r.err, 1, true)
    assert.matches("in method 'recv'", r.err, 1, true)
    assert.are.equal("", r.out)
  end)
end)

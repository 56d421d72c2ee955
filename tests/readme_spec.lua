-- tests/readme_spec.lua: every code block of README.md runs here, so that
-- README cannot drift from the code.  Each block is fenced and follows a
-- marker line that says how to test it:
--
--   <!-- test: program -->      Lua, a complete program run by luasock (in
--                               a network namespace of its own if it can): it
--                               must exit 0, stderr empty, and print exactly
--                               the lines its "--> " comments show, in order
--                               (blanks compare as one space; a <word> in
--                               angle brackets stands for any word: a port)
--   <!-- test: echo-server -->  Lua, a server listening on 127.0.0.1:8001
--                               that prints its address first: run on an
--                               ephemeral port (8001 becomes 0), it must
--                               echo what a client sends
--   <!-- test: repl [with scripts/X.lua] -->
--                               a REPL transcript: the lines after "> " and
--                               ">> " are typed into `luasock -i`, whose
--                               output must be the transcript itself; with
--                               a script, that server runs first on an
--                               ephemeral port, put where 8001 is written
--   <!-- test: c -->            C, compiled against the build tree and run:
--                               it must exit 0
--   <!-- test: shell -->        commands for the reader's shell: each
--                               command and each path they name must exist
--                               (build/ is the build directory under test)
--
-- A code block without a marker, or indented instead of fenced, fails.
local support = require "tests.support"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests"
local ROOT = support.absolute(here .. "/..")
local BUILD = os.getenv("LUASOCK_BUILD") or (ROOT .. "/build")

-- The blocks of README: { line, lang, kind, arg, code }.  Raises on a
-- block that cannot be tested.
local function readme_blocks()
  local blocks, block, marker, prev = {}, nil, nil, ""
  local n = 0
  for line in (assert(support.read_file(ROOT .. "/README.md")) .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if block then
      if line:match("^```%s*$") then
        blocks[#blocks + 1], block = block, nil
      else
        block.code[#block.code + 1] = line
      end
    elseif line:match("^```") then
      assert(marker, ("README.md:%d: a code block without a <!-- test: ... --> line before it"):format(n))
      local kind, arg = marker:match("^(%S+)%s*(.-)$")
      block = { line = n, lang = line:match("^```(%S*)"), kind = kind, arg = arg, code = {} }
    elseif line:match("^    %S") and prev == "" then
      error(("README.md:%d: an indented code block: fence it and mark it"):format(n))
    end
    if line:match("%S") then marker = line:match("^<!%-%- test: (.-) %-%->$") end
    prev = line
  end
  assert(not block, "README.md: a code block is not closed")
  for _, b in ipairs(blocks) do b.code = table.concat(b.code, "\n") .. "\n" end
  return blocks
end

-- Blanks compared as one space.
local function squeeze(s)
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- Whether the output line matches the expected one (with <word>s).
local function line_matches(expected, got)
  local pattern = squeeze(expected):gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  pattern = pattern:gsub("<%w+>", "%%S+")
  return squeeze(got):match("^" .. pattern .. "$") ~= nil
end

local function lines(text)
  local t = {}
  for line in text:gmatch("(.-)\n") do t[#t + 1] = line end
  return t
end

-- What a program block shows it prints: its "--> " comments, in order.
local function shown_output(code)
  local t = {}
  for _, line in ipairs(lines(code)) do
    local out = line:match("%-%->%s?(.*)$")
    if out then t[#t + 1] = out end
  end
  return t
end

-- The words that run argv in a network namespace of its own with its
-- loopback up, when this machine lets us make one: a block's fixed names
-- (an abstract unix name) then cannot clash with a run beside it.
local netns_prefix
local function isolated(argv)
  if netns_prefix == nil then
    netns_prefix = false
    for _, flags in ipairs({ "-rn", "-n" }) do
      local words = { "unshare", flags, "sh", "-c", 'ip link set lo up && exec "$@"', "sh" }
      local probe = { table.unpack(words) }
      probe[#probe + 1] = "true"
      if support.run(probe).code == 0 then
        netns_prefix = words
        break
      end
    end
  end
  if not netns_prefix then return argv end
  return table.move(argv, 1, #argv, #netns_prefix + 1, { table.unpack(netns_prefix) })
end

local function run_program(b)
  local file = support.temp_file(b.code, "block.lua")
  local r = support.run(isolated({ support.LUASOCK, file }))
  assert.are.equal("", r.err)
  assert.are.equal(0, r.code, r.out)
  local want, got = shown_output(b.code), lines(r.out)
  assert.are.equal(#want, #got, "printed:\n" .. r.out)
  for i = 1, #want do
    assert(line_matches(want[i], got[i]), ("line %d: printed %q, README shows %q"):format(i, got[i], want[i]))
  end
end

local function run_echo_server(b)
  local code, subs = b.code:gsub('{"127%.0%.0%.1", 8001}', '{"127.0.0.1", 0}')
  assert.are.equal(1, subs, "the server does not listen on 127.0.0.1:8001")
  local server = support.start({ support.LUASOCK, support.temp_file(code, "server.lua") })
  local _, port = server:address("echo server at")
  local c <close> = support.connect(port)
  assert(c:sendall("ping"))
  assert.are.equal("ping", c:recv(100))
end

local function run_repl(b)
  local transcript = b.code
  if b.arg ~= "" then
    local script = assert(b.arg:match("^with (scripts/%S+%.lua)$"), "unknown repl marker: " .. b.arg)
    local server = support.start({ support.LUASOCK, script, "127.0.0.1", "0" })
    local _, port = server:address("[%w ]-:")
    transcript = transcript:gsub("8001", tostring(port))
  end
  local typed = {}
  for _, line in ipairs(lines(transcript)) do
    typed[#typed + 1] = line:match("^>>? (.*)$")
  end
  local r = support.run({ support.LUASOCK, "-i" }, { stdin = table.concat(typed, "\n") .. "\n",
                                                     env = { HOME = support.temp_dir() } })
  assert.are.equal(0, r.code, r.out .. r.err)
  assert.are.equal("", r.err)
  local after_banner = r.out:match("^[^\n]*\n(.*)$")
  assert.are.equal(transcript .. "> \n", after_banner)
end

-- The build's library directory and whether it is a sanitizer build (a
-- program linking it must then link the sanitizers' runtimes too).
local function compile_flags()
  local flags = { "-I" .. ROOT .. "/src", "-L" .. BUILD, "-Wl,-rpath," .. BUILD }
  if os.getenv("LUASOCK_SANITIZE") == "1" then
    flags[#flags + 1] = "-fsanitize=address,undefined"
  end
  local lua = support.run({ "pkg-config", "--cflags", "--libs", "lua5.4" })
  assert.are.equal(0, lua.code, lua.err)
  for word in lua.out:gmatch("%S+") do flags[#flags + 1] = word end
  return flags
end

local function run_c(b)
  local dir = support.temp_dir()
  local argv = { os.getenv("CC") or "cc", "-std=c99", "-Wall", "-Werror", "-o", dir .. "/app",
                 support.temp_file(b.code, "app.c"), "-lluasock" }
  table.move(compile_flags(), 1, #compile_flags(), #argv + 1, argv)
  local cc = support.run(argv, { limit = 60 })
  assert.are.equal(0, cc.code, cc.out .. cc.err)
  local r = support.run({ dir .. "/app" })
  assert.are.equal(0, r.code, r.out .. r.err)
end

-- A word of a command line that names a file in the checkout: build/x is
-- x in the build directory under test.
local function path_of(word)
  local rest = word:match("^build/(.*)$")
  if rest then return BUILD .. "/" .. rest end
  return ROOT .. "/" .. word
end

local function exists(path)
  return os.execute("test -e " .. support.quote(path)) == true
end

local function on_path(command)
  return os.execute("command -v " .. support.quote(command) .. " >/dev/null") == true
end

local function check_shell(b)
  for _, line in ipairs(lines(b.code)) do
    for command in (line .. "&&"):gmatch("%s*(.-)%s*[&|;]+") do
      local first = true
      for word in command:gmatch("%S+") do
        if first and not word:find("/") then
          assert(on_path(word), ("README.md:%d: no command %s"):format(b.line, word))
        elseif word:find("/") and not word:match("^%-") then
          assert(exists(path_of(word)), ("README.md:%d: no file %s"):format(b.line, word))
        end
        first = false
      end
    end
  end
end

local RUN = { program = run_program, ["echo-server"] = run_echo_server, repl = run_repl,
              c = run_c, shell = check_shell }

describe("README.md", function()
  local blocks = readme_blocks()

  it("has its code blocks marked, each with a known test", function()
    assert.is_true(#blocks >= 10, "only " .. #blocks .. " blocks found")
    for _, b in ipairs(blocks) do
      assert(RUN[b.kind], ("README.md:%d: unknown test kind %q"):format(b.line, b.kind))
    end
  end)

  -- The layout paragraph ("Tests and layout") left out buffer.c,
  -- sendfile.c, relay.c, workers.c, module.c and program/alloc.c as they
  -- came: a newcomer looking for socket.relay's code found no file for it.
  it("names every C file of src/ in its layout paragraph", function()
    local readme = assert(support.read_file(ROOT .. "/README.md"))
    local files = assert(io.popen("cd " .. support.quote(ROOT) .. " && ls src/*.c src/*/*.c"))
    local count = 0
    for path in files:lines() do
      local name = path:match("[^/]+$")
      local family = name:match("^%a+_")   -- tls_conn.c is one of `tls_*.c`
      assert(readme:find("`" .. name .. "`", 1, true)
        or (family and readme:find("`" .. family .. "*.c`", 1, true)), "README.md does not name " .. path)
      count = count + 1
    end
    files:close()
    assert.is_true(count >= 30, "only " .. count .. " C files found")
  end)

  for _, b in ipairs(blocks) do
    it(("block at line %d (%s) works as shown"):format(b.line, b.kind), function()
      RUN[b.kind](b)
    end)
  end
end)

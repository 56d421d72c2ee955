-- tests/peers/child.lua: run a program as a child of the test, with its
-- standard input and output on a TCP connection to the test, so that every
-- read of its output has a time limit (a socket timeout) and no sleep is
-- needed to synchronise with it.
--
-- A bash started with io.popen connects back to a listener of ours on
-- 127.0.0.1 (bash's /dev/tcp redirection), starts the program in the
-- background with that connection as stdin and stdout, prints its pid on
-- the popen pipe, waits for it and reports its exit status on a second
-- connection.  bash stays the program's parent, so the program is reaped;
-- io.popen's close reaps bash.
--
-- Specs start children with support.start (tests/support.lua), which
-- kills and reaps them after the test:
--   local c = support.start({LUASOCK, "scripts/server.lua", "127.0.0.1", "0"})
--   local line = c:line()              -- nil, "timeout" after the limit
--   c:send("hello\n"); c:close_stdin(); local status = c:wait()
--   c:kill()                           -- ends it earlier
--
-- Options:
--   stdin  = "socket" (default), "null", or "pipe": a real pipe fed from
--            the connection by cat, which holds the connection until
--            close_stdin (c:rest() sees the end of the output only after);
--   stdout = "socket" (default), or "pipe": a real pipe drained into the
--            connection by cat;
--   stderr = "file" (default, read with c:stderr()), or "socket": merged
--            into the output.
local socket = require "socket"

local M = {}
M.LUASOCK = os.getenv("LUASOCK") or "build/luasock"
-- Debian's python3 before the one on PATH, which may be a version
-- manager's shim: pyenv's took 12 s to start at a load of 20.
M.PYTHON = io.open("/usr/bin/python3") and "/usr/bin/python3" or "python3"
M.TIMEOUT = 10  -- seconds for any single wait on a child (unless told): a loaded machine

local Child = {}
Child.__index = Child

-- Quote one word for the shell.
local function quote(word)
  return "'" .. tostring(word):gsub("'", [['\'']]) .. "'"
end
M.quote = quote

local function command_line(argv, opts, errfile)
  local words = {}
  for i, w in ipairs(argv) do words[i] = quote(w) end
  local cmd = table.concat(words, " ")
  local input = ({ pipe = "< <(exec cat <&3)", null = "</dev/null" })[opts.stdin] or "<&3"
  local output = opts.stdout == "pipe" and "> >(exec cat >&3)" or ">&3"
  local err = opts.stderr == "socket" and "2>&3" or "2>" .. quote(errfile)
  return ("%s %s %s %s 3>&-"):format(cmd, input, output, err)
end

-- The bash script: connect, start the program, print its pid, close our
-- copy of the connection (so the test sees EOF when the program ends),
-- wait, report the status on a new connection, then wait for cat.
local function wrapper(port, line)
  local tcp = "/dev/tcp/127.0.0.1/" .. port
  return table.concat({
    "exec 3<>" .. tcp, line .. " &", "pid=$!", "echo $pid", "exec 3>&-",
    "wait $pid; st=$?", "exec 4<>" .. tcp, "echo $st >&4", "exec 4>&-", "wait",
  }, "\n")
end

-- Start argv (a list of words) as described above; raises if the child
-- cannot be started or does not connect back within M.TIMEOUT.
function M.start(argv, opts)
  opts = opts or {}
  local ls = assert(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
  assert(ls:bind({"127.0.0.1", 0}))
  assert(ls:listen(4))
  ls:settimeout(M.TIMEOUT)
  local self = setmetatable({ listener = ls, buf = "", errfile = os.tmpname() }, Child)
  local script = wrapper(ls:getsockname().port, command_line(argv, opts, self.errfile))
  self.proc = assert(io.popen("exec bash -c " .. quote(script) .. " 2>/dev/null", "r"))
  self.pid = tonumber(self.proc:read("l"))
  local conn, err = ls:accept()
  if not (self.pid and conn) then
    self:kill()
    error("child did not start: " .. tostring(err))
  end
  conn:settimeout(M.TIMEOUT)
  self.conn = conn
  return self
end

-- Receive output into self.buf until enough(buf) is true; returns true,
-- or nil and "timeout", "eof" or the error (what came is kept).
function Child:fill(enough, timeout)
  local deadline = socket.gettime() + (timeout or M.TIMEOUT)
  while not enough(self.buf) do
    local left = deadline - socket.gettime()
    if left <= 0 then return nil, "timeout" end
    self.conn:settimeout(left)
    local data, err = self.conn:recv(65536)
    if not data then return nil, err end
    if data == "" then return nil, "eof" end
    self.buf = self.buf .. data
  end
  return true
end

-- Next line of output without its newline, or nil and "timeout"/"eof"
-- (the partial line is kept for the next call).
function Child:line(timeout)
  local ok, err = self:fill(function(buf) return buf:find("\n", 1, true) end, timeout)
  if not ok then return nil, err end
  local line, rest = self.buf:match("^(.-)\r?\n(.*)$")
  self.buf = rest
  return line
end

-- Exactly n bytes of output (for prompts that end without a newline).
function Child:read(n, timeout)
  local ok, err = self:fill(function(buf) return #buf >= n end, timeout)
  if not ok then return nil, err end
  local out = self.buf:sub(1, n)
  self.buf = self.buf:sub(n + 1)
  return out
end

-- Lines of output until one matches pattern (a Lua pattern); returns the
-- captures of that line (or the line), or fails the test with what came.
function Child:expect(pattern, timeout)
  local seen = {}
  while true do
    local line, err = self:line(timeout)
    if not line then
      error(("expected a line matching %q, got %s after:\n%s\nstderr: %s"):format(
        pattern, err, table.concat(seen, "\n"), self:stderr()), 2)
    end
    local caps = { line:match(pattern) }
    if caps[1] then return table.unpack(caps) end
    seen[#seen + 1] = line
  end
end

-- The address a server printed: "... HOST:PORT" at the end of the first
-- line matching prefix; returns host, port.
function Child:address(prefix)
  local host, port = self:expect("^" .. prefix .. "%s*%[?([%w%.:]-)%]?:(%d+)$")
  return host, tonumber(port)
end

function Child:send(data)
  assert(self.conn:sendall(data))
end

-- End of input for the child (its stdin reads EOF).
function Child:close_stdin()
  assert(self.conn:shutdown(socket.SHUT_WR))
end

-- Everything left on the output until EOF (the program closed stdout).
function Child:rest(timeout)
  local ok, err = self:fill(function() return false end, timeout)
  if not ok and err ~= "eof" then return nil, err end
  local out = self.buf
  self.buf = ""
  return out
end

-- The exit status of the program (128+n for signal n), reported by bash
-- on a second connection; nil, "timeout" if it does not end in time.
function Child:wait(timeout)
  if self.status then return self.status end
  self.listener:settimeout(timeout or M.TIMEOUT)   -- 0: only look
  local c, err = self.listener:accept()
  if not c then return nil, err end
  c:settimeout(M.TIMEOUT)
  local data = {}
  repeat
    local d = c:recv(64)
    data[#data + 1] = d
  until not d or d == ""
  c:close()
  self.status = tonumber(table.concat(data):match("%d+"))
  return self.status
end

-- CPU time used by the program so far, in clock ticks (utime + stime).
function Child:cputicks()
  local f = assert(io.open("/proc/" .. self.pid .. "/stat"))
  local stat = f:read("a")
  f:close()
  local fields = {}
  for w in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
  return tonumber(fields[12]) + tonumber(fields[13])   -- fields 14, 15 of stat
end

function Child:stderr()
  local f = io.open(self.errfile)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Kill the program (if still running), close our ends and reap bash.
-- Safe to call twice; call it in a finally.  Raises if the program's
-- stderr holds a sanitizer report (a memory error in a script's run).
function Child:kill()
  if not self.proc then return end
  -- Ask bash first whether the program has ended, so that a reaped pid
  -- (which may be reused) is never killed.
  if self.pid and not self.status and not self:wait(0) then
    os.execute("kill -9 " .. self.pid .. " 2>/dev/null")
  end
  if self.conn then self.conn:close() end
  if self.pid and not self.status then self:wait() end
  self.listener:close()
  self.proc:close()
  self.proc, self.conn = nil, nil
  local err = self:stderr()
  os.remove(self.errfile)
  if err:find("ERROR: AddressSanitizer") or err:find("runtime error:") then
    error("sanitizer report from a child:\n" .. err, 2)
  end
end

-- Children started through a scope are killed together by scope.kill,
-- which a test passes to finally (busted keeps one finally per test;
-- support.start needs neither):
--   local kids = child.scope(); finally(kids.kill)
--   local c = kids.start({...})
function M.scope()
  local list, scope = {}, {}
  function scope.start(argv, opts)
    local c = M.start(argv, opts)
    list[#list + 1] = c
    return c
  end
  function scope.kill()             -- every child, then the first error
    local first
    for i = #list, 1, -1 do
      local ok, err = pcall(list[i].kill, list[i])
      first = first or (not ok and err)
    end
    if first then error(first, 0) end
  end
  return scope
end

-- The command line of scripts/name with its arguments, run by luasock.
function M.script(name, ...)
  return { M.LUASOCK, "scripts/" .. name, ... }
end

-- The port a socket is bound to.
function M.port_of(s)
  return s:getsockname().port
end

-- A TCP client socket connected to 127.0.0.1:port (or host), timeout 2 s.
function M.connect(port, host)
  host = host or "127.0.0.1"
  local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
  local s = assert(socket.socket(family, socket.SOCK_STREAM))
  s:settimeout(2)
  local ok, err = s:connect({host, port})
  if not ok then
    s:close()
    error("connect to " .. port .. ": " .. tostring(err), 2)
  end
  return s
end

return M

-- tests/fuzz/addr.lua: address parsing (literals, tables, scopes, unix
-- paths) through inet_pton/inet_ntop, bind, connect, sendto and
-- getnameinfo.  Checks: inet_ntop(inet_pton(x)) parses back to the same
-- bytes; a bound address reads back from getsockname as a table that
-- prints; nothing but the errors the module documents is raised.
local socket = require "socket"
local new = dofile(FUZZ_DIR .. "/input.lua")

local FAMILIES = { socket.AF_INET, socket.AF_INET6, socket.AF_UNIX }
local SEEDS = { "127.0.0.1", "::1", "fe80::1%lo", "::ffff:127.0.0.1", "", "<broadcast>",
  "localhost", "127.1", "0x7f.1", "1::", "[::1]", "@abstract", "\0abs", "/tmp/x" }
local ODD = { 0, -1, 65535, 65536, 1.5, 0 / 0, math.huge, math.mininteger, "80", "x", true, {} }

-- A host: a seed, bytes, or a seed with bytes spliced in.
local function host(input)
  local kind = input:byte() % 3
  if kind == 0 then return input:pick(SEEDS) end
  if kind == 1 then return input:str(48) end
  local s, at = input:pick(SEEDS), input:byte()
  return s:sub(1, at % (#s + 1)) .. input:str(8) .. s:sub(at % (#s + 1) + 1)
end

local function port(input)
  if input:byte() % 4 == 0 then return input:pick(ODD) end
  return input:uint(2)
end

local function address(input, family)
  if family == socket.AF_UNIX then
    return input:byte() % 2 == 0 and ("\0fuzz" .. input:str(20)) or ("@fuzz" .. input:str(120))
  end
  local form = input:byte() % 4
  if form == 0 then return { host(input), port(input) } end
  if form == 1 then return { host(input), port(input), input:pick(ODD), input:pick(ODD) } end
  if form == 2 then return { host(input), port(input), input:uint(4), input:uint(4) } end
  return host(input)   -- a bare string where a table is expected
end

-- Errors the module may raise for a bad address: argument errors.
local function expected(err)
  return type(err) == "string" and (err:find("bad argument", 1, true) or
    err:find("invalid", 1, true) or err:find("out of range", 1, true) or
    err:find("too long", 1, true) or err:find("expected", 1, true))
end

local function call(fn, ...)
  local ok, a, b = pcall(fn, ...)
  if not ok and not expected(a) then error(a, 0) end
  return ok and a, b
end

local function roundtrip(family, text)
  local bytes = call(socket.inet_pton, family, text)
  if not bytes then return end
  local back = assert(socket.inet_ntop(family, bytes))
  assert(socket.inet_pton(family, back) == bytes, "inet_ntop does not parse back")
end

return function(data)
  local input = new(data)
  local family = input:pick(FAMILIES)
  roundtrip(input:pick({ socket.AF_INET, socket.AF_INET6 }), host(input))
  call(socket.inet_ntop, family, input:str(20))
  local addr = address(input, family)
  local s <close> = assert(socket.socket(family, input:pick({ socket.SOCK_STREAM, socket.SOCK_DGRAM })))
  s:settimeout(0)
  local op = input:byte() % 4
  if op == 0 then
    if call(s.bind, s, addr) then
      local name = s:getsockname()
      assert(type(tostring(name)) == "string")
    end
  elseif op == 1 then
    call(s.connect, s, addr)
  elseif op == 2 then
    call(s.sendto, s, "x", addr)
  else
    call(socket.getnameinfo, addr, input:uint(1))
  end
end

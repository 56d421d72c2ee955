-- tests/fuzz/stream.lua: the stream reader.  Random bytes go through a
-- socketpair in random pieces and are read back by makefile() with a
-- random sequence of formats ("l", "L", "n", "a", counts) and line
-- limits.  Lua's own io library reading the same bytes from a file is the
-- model: with a limit above the input's size every result must be the
-- same; with a small limit a line read gives either the model's result
-- or nil, "line too long", and the bytes stay for what follows.
local socket = require "socket"
local new = dofile(FUZZ_DIR .. "/input.lua")

local FORMATS = { "l", "L", "n", "a", 0, 1, 2, 7, 100, 4096 }

-- The formats of one read call: 1 to 3 of them.
local function formats(input)
  local t = {}
  for i = 1, input:byte() % 3 + 1 do t[i] = input:pick(FORMATS) end
  return t
end

local MODEL = os.tmpname()   -- the model's file, rewritten for each input

local function pack(...) return table.pack(...) end

return function(data)
  local input = new(data)
  local small = input:byte() % 4 == 0 and input:byte() % 64 + 1
  local plan = {}
  for i = 1, input:byte() % 8 + 1 do plan[i] = formats(input) end
  local body = data:sub(input.pos, input.pos + 65535)   -- fits the socket buffers
  local a, b = assert(socket.socketpair())
  local f = b:makefile("r", { max_line = small or (#body + 1) })
  a:settimeout(1); b:settimeout(1)
  local at = 1
  while at <= #body do   -- in pieces, to cut lines and numerals anywhere
    local n = input:byte() % 64 + 1
    assert(a:sendall(body:sub(at, at + n - 1)))
    at = at + n
  end
  a:shutdown(socket.SHUT_WR)
  local m = assert(io.open(MODEL, "w+"))
  m:write(body); m:seek("set")
  for _, fmts in ipairs(plan) do
    local got = pack(f:read(table.unpack(fmts)))
    if got[2] == "line too long" then
      assert(small, "line too long with the limit above the input's size")
      break   -- the model cannot follow: the bytes stayed, no format consumed them
    end
    local want = pack(m:read(table.unpack(fmts)))
    for i = 1, math.max(got.n, want.n) do
      if got[i] ~= want[i] and not (got[i] ~= got[i] and want[i] ~= want[i]) then
        error(("read(%s) result %d: %q, Lua's io gives %q"):format(
          table.concat(fmts, ","), i, tostring(got[i]), tostring(want[i])))
      end
    end
  end
  m:close()
  f:close(); b:close(); a:close()
end

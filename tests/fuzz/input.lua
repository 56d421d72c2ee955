-- tests/fuzz/input.lua: reading a fuzzer's input as a stream of choices.
-- Input(data) gives an object whose methods take bytes from the front;
-- past the end they give zeros and empty strings, so every input is a
-- valid program.
local Input = {}
Input.__index = Input

local function new(data)
  return setmetatable({ data = data, pos = 1 }, Input)
end

function Input:byte()
  local b = self.data:byte(self.pos) or 0
  self.pos = self.pos + 1
  return b
end

function Input:left()
  return #self.data - self.pos + 1
end

-- One of the values of list.
function Input:pick(list)
  return list[self:byte() % #list + 1]
end

-- An integer of n bytes (big-endian), unsigned.
function Input:uint(n)
  local v = 0
  for _ = 1, n do v = v * 256 + self:byte() end
  return v
end

-- A string of up to max bytes, its length from the input.
function Input:str(max)
  local n = math.min(self:byte() % (max + 1), self:left())
  local s = self.data:sub(self.pos, self.pos + n - 1)
  self.pos = self.pos + n
  return s
end

return new

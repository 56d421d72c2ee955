-- raw_spec: SOCK_RAW ICMP echo to 127.0.0.1, the packet built and its
-- checksum computed in Lua with string.pack.  Skipped with a printed
-- reason only when the process lacks the privilege (EPERM/EACCES).
local socket = require "socket"
local E = socket.errno

-- The Internet checksum (RFC 1071) of s.
local function checksum(s)
  if #s % 2 == 1 then s = s .. "\0" end
  local sum = 0
  for i = 1, #s, 2 do sum = sum + string.unpack(">I2", s, i) end
  while sum > 0xffff do sum = (sum & 0xffff) + (sum >> 16) end
  return ~sum & 0xffff
end

-- An ICMP echo request (type 8, code 0) with id, seq and payload.
local function echo_request(id, seq, payload)
  local body = string.pack(">I2I2", id, seq) .. payload
  local sum = checksum(string.pack(">BBI2", 8, 0, 0) .. body)
  return string.pack(">BBI2", 8, 0, sum) .. body
end

-- A raw ICMP socket, or nil and why it cannot be had here.
local function raw_icmp()
  local s, msg, code = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
  if s then return s end
  if code == E.EPERM or code == E.EACCES then return nil, msg end
  error("raw socket failed: " .. msg)
end

describe("raw ICMP", function()
  it("checksum of known data", function()
    -- RFC 1071's worked example: the sum is ddf2, the checksum its complement.
    assert.equal(0x220d, checksum("\x00\x01\xf2\x03\xf4\xf5\xf6\xf7"))
    -- A packet carrying its checksum sums to 0.
    local pkt = echo_request(0x1234, 1, "abc")
    assert.equal(0, checksum(pkt))
  end)

  it("gets an echo reply from 127.0.0.1", function()
    local s, why = raw_icmp()
    if not s then print("skipped: no privilege for SOCK_RAW: " .. why); return end
    s:settimeout(2)
    local id, payload = 0xbeef, "luasock ping"
    assert.equal(#payload + 8, s:sendto(echo_request(id, 7, payload), {"127.0.0.1", 0}))
    -- The raw socket also sees our own request on lo: read until the reply.
    for _ = 1, 10 do
      local data, from = assert(s:recvfrom(1500))
      assert.equal("127.0.0.1", from.host)
      local ihl = (data:byte(1) & 0x0f) * 4         -- IPv4 header comes first
      local icmp = data:sub(ihl + 1)
      local typ, code, _, rid, seq = string.unpack(">BBI2I2I2", icmp)
      if typ == 0 and rid == id then
        assert.equal(0, code)
        assert.equal(7, seq)
        assert.equal(payload, icmp:sub(9))
        assert.equal(0, checksum(icmp))
        s:close()
        return
      end
    end
    s:close()
    error("no echo reply")
  end)

  it("raises on misuse of the raw socket", function()
    local s = raw_icmp()
    if not s then print("skipped: no privilege for SOCK_RAW"); return end
    assert.has_error(function() s:sendto("x", "127.0.0.1") end)
    s:close()
  end)
end)

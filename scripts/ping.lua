-- scripts/ping.lua: ICMP echo over a raw socket (needs root or CAP_NET_RAW).
--
--   luasock scripts/ping.lua [host] [count] [interval]  (defaults 127.0.0.1 3 1)
--
-- host is 127.0.0.1 (or another 127.x address) or ::1: this example pings
-- the loopback only.  Prints each reply with its round-trip time, then a
-- summary; exits 0 when a reply came.
local socket = require "socket"

local host = arg[1] or "127.0.0.1"
local count, interval = tonumber(arg[2] or 3), tonumber(arg[3] or 1)
assert(host == "::1" or host:match("^127%.%d+%.%d+%.%d+$"), "ping.lua pings 127.0.0.1 or ::1 only")
io.stdout:setvbuf("line")

local v6 = host == "::1"
local family = v6 and socket.AF_INET6 or socket.AF_INET
local proto = v6 and socket.IPPROTO_ICMPV6 or socket.IPPROTO_ICMP
local REQUEST, REPLY = v6 and 128 or 8, v6 and 129 or 0   -- ICMP(v6) echo types

-- The Internet checksum (RFC 1071): ones' complement of the ones'
-- complement sum of the 16-bit words.
local function checksum(data)
  if #data % 2 == 1 then data = data .. "\0" end
  local sum = 0
  for i = 1, #data, 2 do sum = sum + string.unpack(">I2", data, i) end
  while sum > 0xffff do sum = (sum & 0xffff) + (sum >> 16) end
  return ~sum & 0xffff
end

-- An echo request with 56 bytes of payload, like ping(8).  For ICMPv6 the
-- kernel computes the checksum (it covers a pseudo-header we do not see).
local function request(id, seq)
  local payload = ("luasock!"):rep(7)
  local sum = checksum(string.pack(">BBI2I2I2", REQUEST, 0, 0, id, seq) .. payload)
  return string.pack(">BBI2I2I2", REQUEST, 0, sum, id, seq) .. payload
end

-- Parse what the raw socket gave: IPv4 comes with its IP header (for the
-- TTL), IPv6 without.  Returns type, id, seq, size, ttl, checksum ok.
local function parse(packet)
  local start, ttl = 1, nil
  if not v6 then
    start = (packet:byte(1) & 0x0f) * 4 + 1   -- IP header length
    ttl = packet:byte(9)
  end
  local icmp = packet:sub(start)
  if #icmp < 8 then return nil end
  local kind, _, _, id, seq = string.unpack(">BBI2I2I2", icmp)
  return kind, id, seq, #icmp, ttl, v6 or checksum(icmp) == 0
end

local s, err, code = socket.socket(family, socket.SOCK_RAW, proto)
if not s then
  local why = (code == socket.errno.EPERM or code == socket.errno.EACCES)
              and "a raw socket needs root or CAP_NET_RAW" or "cannot open a raw socket"
  io.stderr:write(("ping: %s (socket: %s, errno %d)\n"):format(why, err, code))
  os.exit(2)
end

-- Wait for the reply to (id, seq) until deadline; returns it parsed, or nil
-- and "timeout".  On loopback we also see our own request: skip it.
local function await(id, seq, deadline)
  while true do
    local left = deadline - socket.gettime()
    if left <= 0 then return nil, "timeout" end
    s:settimeout(left)
    local packet, from = s:recvfrom(1500)
    if not packet then return nil, from end
    local kind, rid, rseq, size, ttl, ok = parse(packet)
    if kind == REPLY and rid == id and rseq == seq and ok then return size, ttl end
  end
end

local id = math.floor(socket.gettime() * 1e6) % 0xffff + 1   -- tells our replies from others'
local received = 0
print(("PING %s: 56 data bytes"):format(host))
-- One echo: send it, wait up to 1 s for its reply.  Returns the reply's
-- size and TTL, or nil and why (a send error, or "timeout").
local function echo(seq)
  local ok, err = s:sendto(request(id, seq), {host, 0})
  if not ok then return nil, err end
  return await(id, seq, socket.gettime() + 1)
end

for seq = 1, count do
  local sent = socket.gettime()
  local size, ttl = echo(seq)
  if size then
    received = received + 1
    print(("%d bytes from %s: icmp_seq=%d%s time=%.3f ms"):format(size, host, seq,
      ttl and " ttl=" .. ttl or "", (socket.gettime() - sent) * 1000))
  else
    print(("no reply for icmp_seq=%d: %s"):format(seq, ttl))   -- ttl holds the reason
  end
  if seq < count then socket.sleep(interval) end
end
print(("--- %s ping statistics ---"):format(host))
print(("%d packets transmitted, %d received, %d%% packet loss"):format(count, received,
  (count - received) * 100 // count))
s:close()
os.exit(received > 0 and 0 or 1)

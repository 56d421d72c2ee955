-- scripts/http_hello.lua: HTTP/1.1 "Hello, world!" with keep-alive.
--
--   luasock scripts/http_hello.lua [--workers N|auto] [host] [port]
--                                   (defaults 1 worker, 127.0.0.1, 8001)
--
-- Answers every request with a short text body and a correct
-- Content-Length, keeps the connection open for the next request (HTTP/1.1
-- by default, HTTP/1.0 when asked with "Connection: keep-alive") and
-- closes it after "Connection: close".  Requests sent back to back
-- (pipelined) are answered in order, since reading is buffered.  Try it
-- with `curl http://127.0.0.1:8001/`.
--
-- A client cannot make it hold much memory: a line longer than the
-- stream's limit (64 KiB) reads as nil, more than MAX_HEADERS headers
-- end the connection, and a body is skipped in pieces.
local socket = require "socket"

local argv, workers = { table.unpack(arg) }, 1
if argv[1] == "--workers" then   -- N processes share the listening socket
  workers = tonumber(argv[2]) or argv[2]
  table.remove(argv, 1)
  table.remove(argv, 1)
end
local host, port = argv[1] or "127.0.0.1", tonumber(argv[2] or 8001)
io.stdout:setvbuf("line")

local BODY = "Hello, world!\n"
local MAX_HEADERS = 100   -- as Python's http.client

local family = host:find(":") and socket.AF_INET6 or socket.AF_INET
local s = assert(socket.create_server({host, port}, { family = family, backlog = 511 }))
print("HTTP server at: " .. tostring(s:getsockname()))

-- Read one request head from stream f: the request line and a table of
-- headers (lower-case names).  Returns nil at the end of the stream, on
-- an error ("line too long" included) and past MAX_HEADERS headers.
local function read_request(f)
  local line = f:read("l")
  if not line then return nil end
  local method, target, version = line:match("^(%u+) (%S+) HTTP/(%d%.%d)\r?$")
  local headers = {}
  for _ = 0, MAX_HEADERS do
    local h = f:read("l")
    if not h then return nil end
    h = h:gsub("\r$", "")
    if h == "" then
      return { method = method, target = target, version = version, headers = headers }
    end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  return nil
end

-- The Connection header of the response, and whether the connection stays
-- open after this request (RFC 9112, 9.3): HTTP/1.1 keeps it unless asked
-- to close, HTTP/1.0 only when asked to keep it and told so.
local function connection(req)
  local asked = (req.headers.connection or ""):lower()
  if req.version == "1.0" and asked == "keep-alive" then
    return "Connection: keep-alive\r\n", true
  elseif req.version == "1.0" or asked == "close" then
    return "Connection: close\r\n", false
  end
  return "", true
end

local function respond(f, status, body, header, head_only)
  f:write("HTTP/1.1 ", status, "\r\n",
          "Content-Type: text/plain\r\n",
          "Content-Length: ", #body, "\r\n",
          header, "\r\n", head_only and "" or body)
  return f:flush()
end

-- Read and drop length bytes from f, 64 KiB at a time; false if the
-- stream ends first.
local function skip(f, length)
  while length > 0 do
    local piece = f:read(math.min(length, 65536))
    if not piece or piece == "" then return false end
    length = length - #piece
  end
  return true
end

local function serve(conn)
  -- Each response is flushed as soon as it is ready; without TCP_NODELAY,
  -- Nagle's algorithm would hold the second of two pipelined responses
  -- until the client's delayed ACK for the first (tens of ms).
  conn:setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, true)
  local f = conn:makefile("rw")
  while true do
    local req = read_request(f)
    if not req then break end
    -- A body is skipped by its Content-Length; chunked bodies are not
    -- supported, so such a request ends the connection like a bad one.
    local length = tonumber((req.headers["content-length"] or "0"):match("^%d+$"))
    if not (req.method and length) or req.headers["transfer-encoding"] then
      respond(f, "400 Bad Request", "Bad Request\n", "Connection: close\r\n")
      break
    end
    if not skip(f, length) then break end
    local header, keep = connection(req)
    if not respond(f, "200 OK", BODY, header, req.method == "HEAD") or not keep then break end
  end
  f:close()
  conn:close()
end

socket.spawn(function()
  while true do
    local conn = s:accept()   -- nil, err: that connection failed; go on
    if conn then socket.spawn(serve, conn) end
  end
end)
socket.run{workers = workers}

-- tests/bench/peers/lua_luv.lua - peer: Lua 5.4 + luv (libuv), callbacks.
-- Usage: lua5.4 lua_luv.lua MODE PORT   (as py_asyncio.py)
local uv = require "luv"

local REPLY = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
  .. "Content-Length: 13\r\n\r\nHello, World!"
local mode, port = arg[1], tonumber(arg[2])

local srv = uv.new_tcp()
assert(srv:bind("127.0.0.1", port))
local function on_connection()
  local con = uv.new_tcp()
  srv:accept(con)
  local tail = ""
  local on_read
  function on_read(err, data)
    if err or not data then con:close(); return end
    if mode == "echo" then
      con:write(data)
      -- Stop reading while the peer does not take what we send.
      if con:get_write_queue_size() > 1 << 20 then
        con:read_stop()
        con:write("", function() if not con:is_closing() then con:read_start(on_read) end end)
      end
      return
    end
    local buf, n, last = tail .. data, 0, 0
    for e in buf:gmatch("\r\n\r\n()") do n, last = n + 1, e end
    tail = buf:sub(last > 0 and last or 1)
    if n > 0 then con:write(REPLY:rep(n)) end
  end
  con:read_start(on_read)
end
assert(srv:listen(1024, on_connection))
print("listening on 127.0.0.1:" .. srv:getsockname().port)
io.stdout:flush()
uv.run()

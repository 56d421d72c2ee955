-- idle_spec: what an idle connection costs, a task parked in recv.
--
-- A server holds one task per connection, most of them waiting.  Each
-- costs its coroutine (the lua_State, a stack of at least 45 slots and a
-- call frame for the function and for recv: 1,056 bytes that Lua 5.4
-- fixes), its Task userdata (192 bytes with its two user values) and its
-- slot in the table of live tasks (16 bytes, and the table's spare
-- slots): 1,266 bytes of Lua heap, measured.  The bound leaves 6 bytes:
-- a field added to the Task or the operation record it holds shows here
-- (the smallest adds 8), and so does a wait that allocates.  The program
-- allocates small blocks from size classes (src/program/alloc.c), so RSS
-- follows the heap closely.
local support = require "tests.support"

describe("an idle task parked in recv", function()
  it("costs at most 1,272 bytes of Lua heap and 1,500 of RSS", function()
    local r = support.run({ support.LUASOCK, "-e", [[
      local socket = require "socket"
      local N = 900   -- one descriptor each: under the usual limit of 1,024
      local function rss()
        for line in io.lines("/proc/self/status") do
          local kib = line:match("^VmRSS:%s*(%d+)")
          if kib then return tonumber(kib) * 1024 end
        end
      end
      local function measure()
        collectgarbage(); collectgarbage()
        return collectgarbage("count") * 1024, rss()
      end
      local function echo(conn)
        while true do
          local data = conn:recv(65536)
          if not data or data == "" then break end
          conn:sendall(data)
        end
      end
      local socks = {}   -- unbound UDP sockets: recv waits for ever
      for i = 1, N do socks[i] = assert(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) end
      socket.run(function()
        socket.spawn(echo, socks[1])   -- the first task grows the loop's arrays
        socket.sleep(0)
        local heap0, rss0 = measure()
        for i = 2, N do socket.spawn(echo, socks[i]) end
        socket.sleep(0)                  -- every task parked in recv
        local heap1, rss1 = measure()
        print(("%.0f %.0f"):format((heap1 - heap0) / (N - 1), (rss1 - rss0) / (N - 1)))
        for i = 1, N do socks[i]:close() end   -- their recv ends: "closed"
      end)
    ]] }, { limit = 60 })
    local heap, rss = r.out:match("^(%d+) (%-?%d+)")
    assert(heap, r.out .. r.err)
    heap, rss = tonumber(heap), tonumber(rss)
    assert.is_true(heap <= 1272, ("%d bytes of Lua heap per idle task"):format(heap))
    -- ASan keeps freed memory in quarantine and pads every block.
    if not support.SANITIZED then
      assert.is_true(rss <= 1500, ("%d bytes of RSS per idle task"):format(rss))
    end
  end)
end)

-- makefile_spec: the buffered stream of sock:makefile() (src/stream.c):
-- modes, read formats, lines, write/flush/setvbuf/close, end of stream,
-- and the error channels (misuse raises; timeout, closed and OS failures
-- return nil, msg, errno with the input kept), over socketpair and TCP.
-- Large data and Lua's io as a model are stream_data_spec's; streams in
-- tasks stream_tasks_spec's.
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

local pairs_of = {
  socketpair = function() return support.pair() end,
  tcp = function() return support.pair("tcp") end,
}

-- Whether the socket has data waiting, without waiting for it.
local function pending(s)
  s:settimeout(0)
  local data = s:recv(65536)
  s:settimeout(2)
  return data
end

describe("makefile", function()
  describe("modes", function()
    it("accepts Python's modes and raises on others", function()
      local a, b = support.pair()
      local modes = { r = "r", w = "w", rw = "rw", wr = "rw", rb = "r", wb = "w", rwb = "rw", b = "r" }
      for mode, want in pairs(modes) do
        local f = a:makefile(mode)
        assert.equal(("stream (fd %d, %s)"):format(a:fileno(), want), tostring(f))
        f:close()
      end
      assert.matches("stream %(fd %d+, r%)", tostring(a:makefile()))
      for _, mode in ipairs({ "x", "r+", "a", "rt" }) do
        assert.error_matches(function() a:makefile(mode) end,
          "bad argument #1 to 'makefile' %(invalid mode '" .. mode:gsub("%p", "%%%0") .. "'")
      end
      assert.error_matches(function() a:makefile({}) end, "bad argument #1 to 'makefile'")
      a:close()
      assert.error_matches(function() a:makefile() end, "attempt to use a closed socket")
      b:close()
    end)

    it("a stream reads or writes only as its mode says", function()
      local a, b = support.pair()
      local r, w = a:makefile("r"), a:makefile("w")
      assert.error_matches(function() r:write("x") end, "stream not open for writing")
      assert.error_matches(function() w:read() end, "stream not open for reading")
      assert.error_matches(function() w:lines() end, "stream not open for reading")
      assert.is_true(r:flush())
      assert.error_matches(function() r.read(a) end, "luasock.stream expected, got luasock.socket")
      assert.equal("luasock.stream", getmetatable(r).__name)
      a:close(); b:close()
    end)
  end)

  for name, make in pairs(pairs_of) do
    describe("over " .. name, function()
      it("reads each format", function()
        local a, b = make()
        local f = b:makefile()
        assert(a:sendall("one\ntwo\r\nthree\n 42 -7.5 0x1F 1e3 junk\n1e+x\nabcdefgh"))
        assert.equal("one", f:read())
        assert.equal("two\r", f:read("l"))
        assert.equal("three\n", f:read("L"))
        assert.equal(42, f:read("n"))
        assert.equal(-7.5, f:read("*n"))
        assert.equal(31, f:read("n"))
        assert.equal(1000.0, f:read("n"))
        assert.is_nil(f:read("n"))                 -- "junk" is not a numeral
        assert.equal("junk\n", f:read("L"))         -- and stays, as in Lua
        assert.is_nil(f:read("n"))                 -- "1e+" is consumed, as in Lua
        assert.equal("x\n", f:read("L"))
        assert.equal("ab", f:read(2))
        assert.equal("", f:read(0))
        a:shutdown(socket.SHUT_WR)
        assert.equal("cde", f:read(3))
        assert.equal("fgh", f:read(100))            -- fewer at end of stream
        assert.equal("", f:read("a"))               -- "a" at end of stream
        assert.is_nil(f:read("l"))
        assert.is_nil(f:read(0))
        assert.is_nil(f:read(5))
        assert.is_nil(f:read("n"))
        f:close(); a:close(); b:close()
      end)

      it("reads several formats in one call, stopping at the first failure", function()
        local a, b = make()
        b:settimeout(0.05)
        local f = b:makefile()
        assert(a:sendall("12 line\nxyz"))
        local n, line, three, rest = f:read("n", "l", 3, "a")   -- "a" waits for end of stream
        assert.is_nil(n); assert.equal("timeout", line)
        a:shutdown(socket.SHUT_WR)
        n, line, three, rest = f:read("n", "l", 3, "a")
        assert.equal(12, n); assert.equal(" line", line)
        assert.equal("xyz", three); assert.equal("", rest)
        assert.same({ "", n = 2 }, table.pack(f:read("a", "l", "l")))
        f:close(); a:close(); b:close()
      end)

      it("returns a short last line and nil after it", function()
        local a, b = make()
        local f = b:makefile()
        assert(a:sendall("first\nlast"))
        a:close()
        assert.same({ "first", "last", nil }, { f:read("l", "l", "l") })
        assert.equal(1, select("#", f:read("l", "l")))
        f:close(); b:close()
      end)

      it("lines() iterates with formats and ends at end of stream", function()
        local a, b = make()
        local f = b:makefile()
        assert(a:sendall("a\nb\n\nc"))
        a:shutdown(socket.SHUT_WR)
        local got = {}
        for line in f:lines() do got[#got + 1] = line end
        assert.same({ "a", "b", "", "c" }, got)
        assert.is_nil(f:lines()())
        a:close(); f:close(); b:close()

        a, b = make()
        f = b:makefile()
        assert(a:sendall("1 2 3 4 5"))
        a:close()
        local pairs_read = {}
        for x, y in f:lines("n", "n") do pairs_read[#pairs_read + 1] = { x, y } end
        assert.same({ { 1, 2 }, { 3, 4 }, { 5, nil } }, pairs_read)
        f:close(); b:close()
      end)

      it("lines() raises on a failure, as Lua's lines does", function()
        local a, b = make()
        b:settimeout(0.05)
        local f = b:makefile()
        assert(a:sendall("x\n"))
        local it = f:lines("L")
        assert.equal("x\n", it())
        assert.error_matches(function() it() end, "timeout")
        assert.error_matches(function() f:lines("z") end, "invalid format")
        f:close()
        assert.error_matches(function() it() end, "attempt to use a closed stream")
        a:close(); b:close()
      end)

      it("reads a length-prefixed protocol mixing counts and lines", function()
        local a, b = make()
        local w, r = a:makefile("w"), b:makefile()
        local sent = {}
        for i = 1, 300 do
          local body = ("%d:"):format(i) .. ("\n\0x"):rep(i % 37)
          sent[i] = body
          w:write("LEN ", #body, "\n", body)
        end
        w:write("END\n")
        assert.is_true(w:flush())
        for i = 1, 300 do
          local header = r:read("l")
          local len = assert(tonumber(header:match("^LEN (%d+)$")))
          assert.equal(sent[i], r:read(len))
        end
        assert.equal("END", r:read())
        w:close(); r:close(); a:close(); b:close()
      end)

      it("write takes strings and numbers and returns the stream", function()
        local a, b = make()
        local w = a:makefile("w")
        assert.equal(w, w:write("a", 1, " ", 2.5, " ", 3.0):write("\n"))
        assert.equal(w, w:write())
        assert.is_true(w:flush())
        assert.equal("a1 2.5 3\n", b:recv(100))
        assert.error_matches(function() w:write({}) end, "bad argument #1 to 'write'")
        assert.error_matches(function() w:write("x", true) end, "bad argument #2 to 'write'")
        w:close(); a:close(); b:close()
      end)

      it("buffers fully until flush, by line, or not at all", function()
        local a, b = make()
        local w = a:makefile("w")
        w:write("full")
        assert.is_nil(pending(b))
        assert.is_true(w:flush())
        assert.equal("full", b:recv(100))

        assert.is_true(w:setvbuf("line"))
        w:write("no newline")
        assert.is_nil(pending(b))
        w:write(" yet, now\n", "and more")
        assert.equal("no newline yet, now\nand more", b:recv(100))

        assert.is_true(w:setvbuf("full", 4))
        w:write("ab")
        assert.is_nil(pending(b))
        w:write("cdef")                     -- over the 4-byte buffer: "abcd" sent
        assert.equal("abcd", pending(b))

        assert.is_true(w:setvbuf("full", 1 << 50))   -- allocated as used, not at once
        w:write(("z"):rep(100000))
        assert.is_nil(pending(b))                     -- "ef" and the z's wait together
        assert.is_true(w:flush())
        local got = {}
        while #table.concat(got) < 100002 do got[#got + 1] = assert(b:recv(200000)) end
        assert.equal("ef" .. ("z"):rep(100000), table.concat(got))

        assert.is_true(w:setvbuf("no"))
        w:write("x")
        assert.equal("x", pending(b))
        assert.error_matches(function() w:setvbuf("some") end, "invalid option 'some'")
        assert.error_matches(function() w:setvbuf("full", 0) end, "buffer size must be positive")
        w:close(); a:close(); b:close()
      end)

      it("a read flushes pending output before it waits", function()
        local a, b = make()
        local f, g = a:makefile("rw"), b:makefile("rw")
        f:write("ping\n")                   -- stays in the buffer
        assert.is_nil(pending(b))
        g:write("pong\n"); g:flush()
        assert.equal("pong", f:read())      -- data was there: no flush needed
        b:settimeout(0.05)
        assert.same({ nil, "timeout", E.ETIMEDOUT }, { g:read("L") })  -- "ping\n" is still in f
        a:settimeout(0.05)
        assert.same({ nil, "timeout", E.ETIMEDOUT }, { f:read() })  -- flushed "ping\n", then waited
        assert.equal("ping\n", g:read("L"))
        f:close(); g:close(); a:close(); b:close()
      end)

      it("close flushes and leaves the socket open", function()
        local a, b = make()
        local w = a:makefile("w")
        w:write("bye")
        assert.is_true(w:close())
        assert.equal("bye", b:recv(100))
        assert.is_true(w:close())           -- twice is harmless
        assert.equal("stream (closed)", tostring(w))
        assert.equal(3, a:send("yes"))
        assert.equal("yes", b:recv(100))
        do
          local tbc <close> = a:makefile("w")
          tbc:write("tbc")
        end
        assert.equal("tbc", b:recv(100))
        a:close(); b:close()
      end)

      it("a closed stream raises", function()
        local a, b = make()
        local f = a:makefile("rw")
        f:close()
        for _, m in ipairs({ "read", "lines", "write", "flush", "setvbuf" }) do
          assert.error_matches(function() f[m](f, "full") end, "attempt to use a closed stream")
        end
        a:close(); b:close()
      end)

      it("a closed socket makes the stream return nil, 'closed'", function()
        local a, b = make()
        local f = a:makefile("rw")
        assert(b:sendall("buffered\n"))
        f:write("pending")
        a:close()
        assert.same({ nil, "closed", E.EBADF }, { f:read() })
        assert.same({ nil, "closed", E.EBADF, 0 }, { f:write("x") })
        assert.same({ nil, "closed", E.EBADF }, { f:flush() })
        assert.same({ nil, "closed", E.EBADF }, { f:close() })   -- "pending" is lost
        assert.equal("stream (closed)", tostring(f))
        assert.is_true(f:close())
        local g = b:makefile()
        assert.is_true(g:close())
        b:close()
        assert.is_true(g:close())
      end)

      it("times out as one deadline and keeps the input for a retry", function()
        local a, b = make()
        b:settimeout(0.2)
        local f = b:makefile()
        assert(a:sendall("whole\npart"))
        local t0 = socket.gettime()
        assert.same({ nil, "timeout", E.ETIMEDOUT }, { f:read("l", "l") })
        local elapsed = socket.gettime() - t0
        assert.is_true(elapsed >= 0.19 and elapsed < 1.5, "elapsed " .. elapsed)
        assert.same({ nil, "timeout", E.ETIMEDOUT }, { f:read(100) })
        assert.same({ nil, "timeout", E.ETIMEDOUT }, { f:read("a") })
        assert(a:sendall("ial\n"))
        assert.same({ "whole", "partial" }, { f:read("l", "l") })
        b:settimeout(0)                      -- non-blocking: EAGAIN, as recv does
        assert.same({ nil, "Resource temporarily unavailable", E.EAGAIN }, { f:read() })
        f:close(); a:close(); b:close()
      end)

      it("a write that times out says how much it took", function()
        local a, b = make()
        a:settimeout(0.2)
        local w = a:makefile("w")
        local data = ("x"):rep(32 * 1024 * 1024)   -- more than the peer's buffers
        local ok, msg, code, taken = w:write("ab", data)
        assert.is_nil(ok); assert.equal("timeout", msg); assert.equal(E.ETIMEDOUT, code)
        assert.is_true(taken > 2 and taken < #data + 2, "taken " .. tostring(taken))
        w:close(); a:close(); b:close()
      end)

      it("reports OS failures with nil, msg, errno", function()
        local a, b = make()
        local f = a:makefile("rw")
        assert(a:sendall("unread"))
        b:close()                            -- with unread data: a reset on TCP
        local ok, msg, code
        for _ = 1, 10 do
          f:write("data")
          ok, msg, code = f:flush()
          if not ok then break end
        end
        assert.is_nil(ok)
        assert.is_true(code == E.EPIPE or code == E.ECONNRESET, msg)
        assert.equal(type(msg), "string")
        f:close(); a:close()
      end)

      it("raises on bad formats", function()
        local a, b = make()
        local f = b:makefile()
        assert.error_matches(function() f:read("x") end, "bad argument #1 to 'read' %(invalid format%)")
        assert.error_matches(function() f:read("l", -1) end, "bad argument #2 to 'read' %(byte count must be non%-negative%)")
        assert.error_matches(function() f:read(1.5) end, "number has no integer representation")
        assert.error_matches(function() f:read({}) end, "bad argument #1 to 'read'")
        f:close(); a:close(); b:close()
      end)
    end)
  end

  it("a read over TCP reports a reset with nil, msg, ECONNRESET", function()
    local a, b = support.pair("tcp")
    local f = a:makefile("rw")
    f:write("unread by b"):flush()
    b:close()                               -- with data unread: a reset
    assert.same({ nil, "Connection reset by peer", E.ECONNRESET }, { f:read("l") })
    f:close(); a:close()
  end)
end)

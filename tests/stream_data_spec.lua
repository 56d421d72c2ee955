-- stream_data_spec: the stream of sock:makefile() with large data
-- (multi-megabyte lines, reads and writes, content checked against a
-- child luasock peer), compared with Lua's io reading the same bytes from
-- a file, and its memory and descriptors (a stream never closes its
-- socket; a collected one sends what it buffered).
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

-- A child luasock that connects to a listener of ours and runs code with
-- the connected socket as `c`.  Returns our end and a function that closes
-- it, waits for the child to end and returns what it printed.  Both ends
-- have a 20 s timeout: a timeout is a deadline for the whole call, and a
-- sendall of 10 MB took over 2 s under ASan on a loaded machine.
local function peer(code)
  local l, addr = support.listener("tcp")
  local child = support.start({ support.LUASOCK, "-e", ([[local socket = require "socket"
    local c = socket.socket(); c:settimeout(20)
    assert(c:connect({"127.0.0.1", %d}))
    %s]]):format(addr.port, code) }, { stdin = "null" })
  local conn, err = l:accept()
  l:close()
  if not conn then error("peer did not connect: " .. tostring(err) .. "\n" .. child:stderr()) end
  conn:settimeout(20)
  local function finish()
    conn:close()
    return assert(child:rest(30))
  end
  return conn, finish
end

-- Run check(stream) on a stream (mode) over a connection to a peer
-- running code; the peer's end is awaited whatever happens.  Returns its
-- output.
local function with_peer(code, mode, check)
  local conn, finish = peer(code)
  local f = conn:makefile(mode)
  local ok, err = pcall(check, f, conn)
  f:close()
  local out = finish()
  assert(ok, err)
  return out
end

local BLOCKS, blocks = support.BLOCKS, support.blocks

describe("makefile", function()
  describe("large data", function()
    it("reads a 1 MB line and what follows it", function()
      with_peer([[
        assert(c:sendall(("A"):rep(1024 * 1024) .. "\n" .. ("B"):rep(300000) .. "\ntail"))
        c:close()]], "r", function(f)
        assert.is_true(f:setlimit(1024 * 1024))   -- the default is 64 KiB
        local line = f:read("l")
        assert.equal(1024 * 1024, #line)
        assert.equal(("A"):rep(1024 * 1024), line)
        assert.equal(("B"):rep(300000) .. "\n", f:read("L"))
        assert.equal("tail", f:read("l"))
        assert.is_nil(f:read("l"))
      end)
    end)

    it("reads 10 MB with 'a' and with a count, content checked", function()
      local size = 10 * 1000 * 1000
      with_peer(BLOCKS .. ([[
        local data = blocks(%d)
        assert(c:sendall(data))
        assert(c:sendall(data))
        c:close()]]):format(size), "r", function(f)
        local want = blocks(size)
        local got = f:read(size)
        assert.equal(size, #got)
        assert.is_true(got == want, "count read differs")
        got = f:read("a")
        assert.equal(size, #got)
        assert.is_true(got == want, "'a' read differs")
        assert.is_nil(f:read(1))
      end)
    end)

    it("writes 10 MB through the buffer to a peer, content checked", function()
      local size = 10 * 1000 * 1000
      local data = blocks(size)
      local out = with_peer(BLOCKS .. ([[
        local parts = {}
        while true do
          local d = assert(c:recv(1 << 20))
          if d == "" then break end
          parts[#parts + 1] = d
        end
        print(table.concat(parts) == blocks(%d) and "same" or "different")]]):format(size),
        "w", function(w, conn)
          for i = 1, #data, 7000 do assert(w:write(data:sub(i, i + 6999))) end
          assert.is_true(w:close())
          conn:close()                      -- the peer sees the end
        end)
      assert.equal("same\n", out)
    end)
  end)

  describe("against Lua's io", function()
    -- Random text of lines, numerals, spaces and other bytes.
    local function random_text(n)
      local pieces = { "\n", " ", "  ", "\t", "12", "-3.5", "0x1F", "1e+", "1e3", ".5",
                       "abc", "x", "\r\n", "\0", "0x", "+", "99999", "line" }
      local t = {}
      for i = 1, n do t[i] = pieces[math.random(#pieces)] end
      return table.concat(t)
    end

    -- One to three formats; "a" drains the input, so it comes late or not.
    local function random_formats(late)
      local all = { "l", "L", "n", 0, 1, 3, 7, 20, 100 }
      local f = {}
      for i = 1, math.random(3) do f[i] = all[math.random(#all)] end
      if late and math.random(100) == 1 then f[#f + 1] = "a" end
      return f
    end

    it("reads tricky numerals as a file does", function()
      local inputs = { ("9"):rep(199) .. " 1", ("9"):rep(250) .. "\n7", "0x" .. ("f"):rep(300),
        "  \n\t 5", "1e", "-", "0x1p-2", ".e5", "1..2", "nan", "inf", "0x.8", "1E+5x",
        "--1", "+.5", "0xg", "00012", "3.", "1e309", "-0" }
      for _, text in ipairs(inputs) do
        local file = assert(io.open(support.temp_file(text), "rb"))
        local a, b = support.pair()
        assert(a:sendall(text)); a:shutdown(socket.SHUT_WR)
        local f = b:makefile()
        for step = 1, 10 do
          for _, fmt in ipairs({ "n", "L" }) do
            local want, got = table.pack(file:read(fmt)), table.pack(f:read(fmt))
            assert.same(want, got, ("%q, step %d, %s"):format(text:sub(1, 20), step, fmt))
          end
          if file:read(0) == nil then assert.is_nil(f:read(0)); break end
        end
        file:close()
        f:close(); a:close(); b:close()
      end
    end)

    it("gives the same results as a file for random reads of random chunks", function()
      for round = 1, 30 do
        math.randomseed(1000 + round)
        local text = random_text(math.random(2000, 4000))
        local file = assert(io.open(support.temp_file(text), "rb"))
        local calls = {}
        for i = 1, 800 do calls[i] = random_formats(i > 400) end
        local a, b = support.pair()
        local got = {}
        socket.spawn(function()   -- the text in random pieces, each waited for
          local i = 1
          while i <= #text do
            local n = math.random(1, 40)
            assert(a:sendall(text:sub(i, i + n - 1)))
            i = i + n
            socket.sleep(0)
          end
          a:shutdown(socket.SHUT_WR)
        end)
        socket.spawn(function()
          local f = b:makefile()
          for i, fmts in ipairs(calls) do got[i] = table.pack(f:read(table.unpack(fmts))) end
          f:close()
        end)
        local ok, err = socket.run()
        assert(ok, err)
        local live = 0   -- calls made before the text ran out
        for i, fmts in ipairs(calls) do
          if file:seek() < #text then live = i end
          local want = table.pack(file:read(table.unpack(fmts)))
          assert.same(want, got[i], ("round %d, call %d"):format(round, i))
        end
        assert.is_true(live > 100 and live < #calls, "text ran out after " .. live .. " calls")
        file:close()
        a:close(); b:close()
      end
    end)
  end)

  describe("memory and descriptors", function()
    it("a stream keeps its socket alive and never closes it", function()
      local f = (function()
        local a, b = support.pair()
        assert(b:sendall("kept\n"))
        b:close()
        return a:makefile()
      end)()
      collectgarbage(); collectgarbage()
      assert.equal("kept", f:read())   -- the socket was not collected
      assert.is_nil(f:read())
      f = nil
      -- the fd leak check after this test proves the socket went with it
    end)

    it("a collected stream sends what it still buffered", function()
      local a, b = support.pair()
      local w = a:makefile("w")
      w:write("from gc")
      w = nil                                                    -- luacheck: ignore
      collectgarbage(); collectgarbage()
      assert.equal("from gc", b:recv(100))
      a:close(); b:close()
    end)

    it("leaks no descriptor over many streams and sockets", function()
      for i = 1, 200 do
        local a, b = support.pair()
        local f, g = a:makefile("rw"), b:makefile("rw")
        f:write("x\n"):flush()
        assert.equal("x", g:read())
        if i % 2 == 0 then a:close(); f:close() else f:close(); a:close() end
        if i % 3 == 0 then g:close() end
      end
      collectgarbage(); collectgarbage()
    end)
  end)
end)

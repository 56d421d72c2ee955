-- alloc_spec: the program's Lua allocator (src/program/alloc.c) reserves
-- 16 GiB of address space for its blocks, and must not be charged for it.
--
-- The region was mapped readable and writable with MAP_NORESERVE, which
-- Linux ignores under vm.overcommit_memory=2: the whole 16 GiB counted
-- against the commit limit (a program failing to start, or taking from
-- everything else on a machine that limits commit), and again in every
-- worker a fork made.  A PROT_NONE reservation is never charged; the
-- allocator makes it writable a step at a time as it carves blocks, and
-- only those steps count.  Changing the sysctl needs root and touches the
-- whole machine, so the test checks the mappings themselves.
local support = require "tests.support"

-- The program under ASan uses malloc, and ASan maps its own shadow
-- memory writable: nothing of ours to check there.
local it_unsanitized = support.SANITIZED and pending or it

-- Runs code in a child luasock after a prelude: status(field) reads a
-- figure of /proc/self/status in KiB; t is an array of N slots made
-- once, so that malloc's part (the array) stays the same while the small
-- blocks come and go; fill(make) puts make(i) in every slot, empties them
-- again, collects, and returns VmRSS and VmData.  Prints what code returns.
local function child(code)
  local r = support.run({ support.LUASOCK, "-e", [[
    local function status(field)
      for line in io.lines("/proc/self/status") do
        local kib = line:match("^" .. field .. ":%s*(%d+)")
        if kib then return tonumber(kib) end
      end
    end
    local N = 100000
    local t = {}
    for i = 1, N do t[i] = false end
    local function fill(make)
      for i = 1, N do t[i] = make(i) end
      for i = 1, N do t[i] = false end
      collectgarbage(); collectgarbage()
      return status("VmRSS"), status("VmData")
    end
    print(table.concat({ (function() ]] .. code .. [[ end)() }, " "))
  ]] }, { limit = 60 })
  local figures = {}
  for n in r.out:gmatch("%-?%d+") do figures[#figures + 1] = tonumber(n) end
  assert(#figures > 0, r.out .. r.err)
  return figures
end

describe("the program's allocator", function()
  it_unsanitized("keeps its reserved region inaccessible except for what it uses", function()
    local r = support.run({ support.LUASOCK, "-e", [[
      local t = {}
      for i = 1, 100000 do t[i] = { i } end   -- about 6 MiB of small blocks
      local big, writable = 0, 0
      local perms
      for line in io.lines("/proc/self/smaps") do
        local p = line:match("^%x+%-%x+ (%S+)")
        if p then perms = p end
        local kib = line:match("^Size:%s+(%d+) kB")
        if kib and tonumber(kib) >= 1024 * 1024 then   -- 1 GiB or more
          big = big + 1
          if perms:find("w", 1, true) then writable = writable + 1 end
        end
      end
      print(big, writable, #t)
    ]] }, { limit = 60 })
    local big, writable, n = r.out:match("^(%d+)%s+(%d+)%s+(%d+)")
    assert(big, r.out .. r.err)
    assert.equal(100000, tonumber(n))
    assert.is_true(tonumber(big) >= 1, "the region is reserved")
    assert.equal(0, tonumber(writable))
  end)

  -- After a spike (many connections that close, a big table emptied)
  -- the freed blocks stayed on their classes' lists, their pages the
  -- process's: RSS stayed at its peak (here 37.5 MiB of the 39 grown
  -- stayed).  Spans whose blocks are all free give their pages back
  -- (here all but 2 MiB).
  it_unsanitized("gives the pages of freed blocks back to the system", function()
    local f = child([[
      local rss0 = fill(function() return false end)
      for i = 1, N do   -- blocks of several classes, interleaved
        t[i] = { i, tostring(i) .. "x", string.rep("y", 41 + i % 300) }
      end
      local rss1 = status("VmRSS")
      return rss0, rss1, fill(function() return false end)
    ]])
    local before, peak, after = f[1], f[2], f[3]
    local grown = peak - before
    assert.is_true(grown > 20 * 1024, ("the blocks took %d KiB"):format(grown))
    assert.is_true(after - before < grown / 4,
      ("RSS %d KiB, %d KiB at the peak, %d KiB after the blocks were freed")
        :format(before, peak, after))
  end)

  -- A freed span serves any class: blocks of one size, freed, make room
  -- for as many bytes of another size without the region growing.  The
  -- classes' lists kept each freed block for its own size only.
  it_unsanitized("reuses the room of freed blocks for blocks of another size", function()
    local f = child([[
      local _, data0 = fill(function() return false end)
      local _, data1 = fill(function(i) return { i, i } end)           -- 64 + 32 bytes each
      local _, data2 = fill(function(i) return ("%050d"):format(i) end)   -- 80 bytes each
      return data0, data1, data2
    ]])
    local grown, regrown = f[2] - f[1], f[3] - f[2]
    assert.is_true(grown > 8 * 1024, ("the tables took %d KiB"):format(grown))
    assert.is_true(regrown < 1024, ("the strings took %d KiB more"):format(regrown))
  end)
end)


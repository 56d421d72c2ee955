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
end)

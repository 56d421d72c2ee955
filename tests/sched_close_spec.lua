-- sched_close_spec: a task waiting on a socket that another task closes
-- gets nil, "closed", EBADF at once, in each direction; two tasks may not
-- wait on one socket in the same direction.
local socket = require "socket"
local support = require "tests.support"
local E = socket.errno

local run = support.run_tasks   -- socket.run, failing after 4 s

describe("closing a socket another task waits on", function()
  it("wakes the reader with nil, 'closed', EBADF", function()
    local a, b = support.pair()
    local res
    socket.spawn(function() res = table.pack(a:recv(10)) end)
    socket.spawn(function() a:close() end)
    assert.is_true(run())
    assert.same({ nil, "closed", E.EBADF, n = 3 }, res)
    b:close()
  end)

  it("wakes accept and a writer the same way", function()
    local l = support.listener("tcp")
    local a, b = support.pair("tcp")
    support.fill(a)
    local r1, r2
    socket.spawn(function() r1 = table.pack(l:accept()) end)
    socket.spawn(function() r2 = table.pack(a:sendall("more")) end)
    socket.spawn(function() l:close(); a:close() end)
    assert.is_true(run())
    assert.same({ nil, "closed", E.EBADF }, { r1[1], r1[2], r1[3] })
    assert.same({ nil, "closed", E.EBADF }, { r2[1], r2[2], r2[3] })
    b:close()
  end)

  it("a second task waiting on the same direction raises", function()
    local a, b = support.pair("socketpair", 0.2)
    local first
    socket.spawn(function() first = table.pack(a:recv(10)) end)
    local ok, err = run(function() a:recv(10) end)
    assert.is_false(ok)
    assert.matches("another task is already waiting to read on this socket", err)
    assert.equal("timeout", first[2])
    a:close(); b:close()
  end)
end)

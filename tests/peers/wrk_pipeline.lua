-- tests/peers/wrk_pipeline.lua: a wrk script that sends requests 16 at a
-- time on each connection (HTTP pipelining), so the server finds several
-- requests in one read.
init = function()
  local batch = {}
  for i = 1, 16 do batch[i] = wrk.format("GET", "/" .. i) end
  req = table.concat(batch)
end

request = function()
  return req
end

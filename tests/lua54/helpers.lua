-- tests/lua54/helpers.lua: the busted helper of the specs that run under
-- the stock lua5.4 (luasock loaded from its cpath as "luasock").  It is
-- tests/helpers.lua, with one twist: there "socket" is LuaSocket's name,
-- so the shared test code (tests/support.lua and what it loads) is given
-- luasock's module under that name while it loads, and the name is then
-- handed back, for the specs to reach LuaSocket itself.
local luasock = require "luasock"
package.loaded.socket = luasock
dofile("tests/helpers.lua")
package.loaded.socket = nil

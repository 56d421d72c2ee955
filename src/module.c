/*
** module.c - luasock as a Lua C module for the stock lua5.4: luasock.so
** in its cpath, loaded by require "luasock".  Only that module is built
** from this file; the library and the program have their own entry points
** (luasock.h), so luaopen_luasock is exported by the module alone.
*/
#include "lauxlib.h"

#include "luasock.h"
#include "lib.h"

LUASOCK_API int luaopen_luasock(lua_State *L);

/* The socket module under the name "luasock" (LuaSocket owns "socket"
** there), with "luasock.ssl" and the bundled Lua modules preloaded.  The
** check that the module and the interpreter agree on Lua's version and
** number types comes first: they are built apart. */
int luaopen_luasock(lua_State *L) {
  luaL_checkversion(L);
  lib_preloadportable(L);
  return luaopen_socket(L);
}

/*
** lib.c - what an embedding application calls: luasock_openlibs, and
** access to the Lua modules compiled into the library (lua/ at build time,
** see cmake/embed.cmake), so nothing has to sit beside the binary.
*/
#include <string.h>

#include "lualib.h"

#include "lsock.h"

void lsock_loadmodule(lua_State *L, const char *name) {
  for (const LuaModule *m = lsock_lua_modules; m->name; m++) {
    if (strcmp(m->name, name) != 0) continue;
    if (luaL_loadbuffer(L, m->code, m->len, lua_pushfstring(L, "=[luasock] %s", name)) != LUA_OK)
      lua_error(L);
    lua_remove(L, -2);   /* the chunk name */
    return;
  }
  luaL_error(L, "bundled module '%s' is missing", name);
}

/* package.preload loader of a bundled module: upvalue 1 is its name. */
static int preload_bundled(lua_State *L) {
  lsock_loadmodule(L, lua_tostring(L, lua_upvalueindex(1)));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int preload_socket(lua_State *L) {
  return luaopen_socket(L);
}

void luasock_openlibs(lua_State *L) {
  loop_open(L);   /* before any coroutine exists (they copy its mark) */
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, preload_socket);
  lua_setfield(L, -2, "socket");
  lua_pushcfunction(L, luaopen_socket_ssl);
  lua_setfield(L, -2, "socket.ssl");
  for (const LuaModule *m = lsock_lua_modules; m->name; m++) {
    lua_pushstring(L, m->name);
    lua_pushcclosure(L, preload_bundled, 1);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);
}

/*
** fallback.c - the bundled Lua modules load from their source where this
** Lua's loader rejects their bytecode (lib_loadmodule's fallback, which
** a library built with another Lua than the one it runs with depends on).
**
** It is linked with the library's code and a copy of the bundled modules
** made by "embed --foreign", whose bytecode carries Lua 5.3's version
** byte.  It first checks, for every module, that this Lua's loader
** really rejects its bytecode (else nothing here would reach the
** fallback) and that lib_loadmodule leaves its chunk alone on the stack;
** then it runs a chunk that uses every bundled module and checks their chunks'
** names and lines, as the bytecode would give them.  Exits 0 only if all
** of it went well.
*/
#include <stdio.h>
#include <string.h>

#include "lauxlib.h"

#include "luasock.h"
#include "lib.h"

static const char chunk[] =
  "local socket = require 'socket'\n"
  "local srv = assert(socket.create_server({ '127.0.0.1', 0 }))\n"   /* luasock.create */
  "local c = assert(socket.create_connection(srv:getsockname(), 5))\n"
  "local peer = assert(srv:accept())\n"
  "assert(c:send('x') == 1 and peer:recv(1) == 'x', 'no exchange')\n"
  "c:close(); peer:close(); srv:close()\n"
  "local ran = 0\n"
  "assert(socket.run(function()\n"                                     /* luasock.group */
  "  local g <close> = socket.group()\n"
  "  g:spawn(function() ran = ran + 1 end)\n"
  "  assert(g:wait(5))\n"
  "end))\n"
  "assert(ran == 1, 'the group did not run its task')\n"
  "local ssl = require 'socket.ssl'\n"                                 /* luasock.ssl */
  "assert(ssl.create_default_context().check_hostname, 'socket.ssl is not usable')\n"
  "local info = debug.getinfo(socket.create_server, 'S')\n"
  "assert(info.source == '=[luasock] luasock.create' and info.linedefined > 0,\n"
  "  'create_server is from ' .. info.source .. ':' .. info.linedefined)\n"
  "local _, err = pcall(socket.create_server, { '127.0.0.1', 99999 })\n"
  "assert(err:match('^%[luasock%] luasock%.create:%d+: bad argument'), err)\n";

/* Protected, module name as argument 1: lib_loadmodule leaves exactly
** one value, the module's chunk. */
static int load_one(lua_State *L) {
  lib_loadmodule(L, lua_tostring(L, 1));
  if (lua_gettop(L) != 2 || !lua_isfunction(L, 2))
    return luaL_error(L, "left %d values, the last a %s", lua_gettop(L) - 1, luaL_typename(L, -1));
  return 0;
}

/* Module m's bytecode is refused by this Lua's loader (else nothing here
** would reach the fallback) and lib_loadmodule still gives its chunk. */
static int check_module(lua_State *L, const LuaModule *m) {
  int refused = luaL_loadbufferx(L, m->bytecode, m->bclen, m->name, "b") != LUA_OK;
  if (!refused || !strstr(lua_tostring(L, -1), "version mismatch")) {
    fprintf(stderr, "fallback: the bytecode of %s %s\n", m->name,
            refused ? lua_tostring(L, -1) : "loads: the test would not reach the fallback");
    return 0;
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, load_one);
  lua_pushstring(L, m->name);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "fallback: loading %s: %s\n", m->name, lua_tostring(L, -1));
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

int main(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return 1;
  luasock_openlibs(L);
  int ok = lib_modules[0].name != NULL;
  for (const LuaModule *m = lib_modules; m->name; m++) ok = check_module(L, m) && ok;
  if (luaL_loadstring(L, chunk) != LUA_OK || lua_pcall(L, 0, 0, 0) != LUA_OK) {
    fprintf(stderr, "fallback: %s\n", lua_tostring(L, -1));
    ok = 0;
  }
  lua_close(L);
  if (ok) puts("fallback: ok");
  return ok ? 0 : 1;
}

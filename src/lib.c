/*
** lib.c - what an embedding application calls: luasock_openlibs; the
** preloading module.c does for the stock interpreter; and access to the
** Lua modules compiled into the library (lua/ at build time,
** see cmake/embed.c), so nothing has to sit beside the binary.
*/
#include <string.h>

#include "lualib.h"

#include "luasock.h"
#include "core/loop.h"
#include "socket.h"
#include "lib.h"

void lib_loadmodule(lua_State *L, const char *name) {
  for (const LuaModule *m = lib_modules; m->name; m++) {
    if (strcmp(m->name, name) != 0) continue;
    const char *chunkname = lua_pushfstring(L, LIB_CHUNKNAME, name);
    if (luaL_loadbufferx(L, m->bytecode, m->bclen, chunkname, "b") != LUA_OK) {
      lua_pop(L, 1);   /* lundump.c's header check refused it: the source then */
      if (luaL_loadbufferx(L, m->code, m->len, chunkname, "t") != LUA_OK) lua_error(L);
    }
    lua_remove(L, -2);   /* the chunk name */
    return;
  }
  luaL_error(L, "bundled module '%s' is missing", name);
}

/* package.preload loader of a bundled module: upvalue 1 is its name. */
static int preload_bundled(lua_State *L) {
  lib_loadmodule(L, lua_tostring(L, lua_upvalueindex(1)));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int preload_socket(lua_State *L) {
  return luaopen_socket(L);
}

/* The C modules by the names scripts require: in lua5.4 "socket" is
** LuaSocket's, so luasock's own names work in both programs.
** luaopen_socket gives one table per state, whatever the name. */
static const luaL_Reg program_modules[] = {
  {"socket", preload_socket}, {"socket.ssl", luaopen_socket_ssl},
  {"luasock", preload_socket}, {"luasock.ssl", luaopen_socket_ssl}, {NULL, NULL}};
static const luaL_Reg *const portable_modules = program_modules + 2;   /* luasock, luasock.ssl */

/* Put the C modules of regs and every bundled Lua module into
** package.preload, unless the state already has one of that name there. */
static void preload_modules(lua_State *L, const luaL_Reg *regs) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (; regs->name; regs++) {
    if (lua_getfield(L, -1, regs->name) == LUA_TNIL) {
      lua_pushcfunction(L, regs->func);
      lua_setfield(L, -3, regs->name);
    }
    lua_pop(L, 1);
  }
  for (const LuaModule *m = lib_modules; m->name; m++) {
    if (lua_getfield(L, -1, m->name) == LUA_TNIL) {
      lua_pushstring(L, m->name);
      lua_pushcclosure(L, preload_bundled, 1);
      lua_setfield(L, -3, m->name);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void luasock_openlibs(lua_State *L) {
  loop_open(L);   /* before any coroutine exists (they copy its mark) */
  luaL_openlibs(L);
  preload_modules(L, program_modules);
}

void lib_preloadportable(lua_State *L) {
  preload_modules(L, portable_modules);
}

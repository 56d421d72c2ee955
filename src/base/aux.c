/*
** aux.c - argument checking helpers (base/aux.h): what every Lua function
** of the module checks its arguments with, beside lauxlib's own.
*/
#include <limits.h>

#include "lauxlib.h"

#include "base/aux.h"

lua_Integer aux_checkint(lua_State *L, int idx, lua_Integer min, lua_Integer max) {
  lua_Integer v = luaL_checkinteger(L, idx);
  luaL_argcheck(L, v >= min && v <= max, idx, "integer out of range");
  return v;
}

lua_Integer aux_optint(lua_State *L, int idx, lua_Integer def, lua_Integer min,
                        lua_Integer max) {
  return lua_isnoneornil(L, idx) ? def : aux_checkint(L, idx, min, max);
}

int aux_optflags(lua_State *L, int idx) {
  return (int)aux_optint(L, idx, 0, INT_MIN, INT_MAX);
}

double aux_checktimeout(lua_State *L, int idx, int nilok, const char *what) {
  if (nilok && lua_isnoneornil(L, idx)) return -1;
  double t = luaL_checknumber(L, idx);
  if (!(t >= 0))                       /* NaN too */
    luaL_argerror(L, idx, lua_pushfstring(L, "%s must be non-negative", what));
  return t;
}

void aux_copyfields(lua_State *L, int from) {
  lua_pushnil(L);
  while (lua_next(L, from)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
}

void aux_registerclass(lua_State *L, const char *name) {
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, name);
}

/* Set the functions of regs into the table on top, each with the
** metatable at mt as upvalue when selfup. */
static void set_funcs(lua_State *L, const luaL_Reg *regs, int selfup, int mt) {
  if (selfup) lua_pushvalue(L, mt);
  luaL_setfuncs(L, regs, selfup ? 1 : 0);
}

void aux_setclass(lua_State *L, const AuxClass *c) {
  if (luaL_getmetatable(L, c->name) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    int mt = lua_gettop(L);
    set_funcs(L, c->meta, c->selfup, mt);
    if (c->methods) {
      lua_newtable(L);
      set_funcs(L, c->methods, c->selfup, mt);
      lua_setfield(L, mt, "__index");
    }
    aux_registerclass(L, c->name);
  }
  lua_setmetatable(L, -2);
}

void aux_pushweak(lua_State *L, const char *mode) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, mode);
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
}

/*
** base/aux.h - argument checking helpers every layer's Lua functions
** share (aux.c), as lauxlib.c serves Lua's own libraries: integers in a
** range, flags, timeouts, small table helpers.
*/
#ifndef LSOCK_AUX_H
#define LSOCK_AUX_H

#include "lauxlib.h"

/* The integer argument at idx, which must lie in min..max: raises "number
** expected" or "integer out of range" against idx.  flags, sizes, levels,
** options: never cast a lua_Integer to int without it. */
lua_Integer aux_checkint(lua_State *L, int idx, lua_Integer min, lua_Integer max);

lua_Integer aux_optint(lua_State *L, int idx, lua_Integer def, lua_Integer min,
                        lua_Integer max);             /* nil or none: def */

/* An optional flags argument (MSG_*; default 0): any C int. */
int aux_optflags(lua_State *L, int idx);

/* A timeout (or delay) argument in seconds: a number >= 0 (NaN raises
** "<what> must be non-negative"); nil or none gives -1 (no deadline) when
** nilok, else raises "number expected". */
double aux_checktimeout(lua_State *L, int idx, int nilok, const char *what);

/* Copy the fields of the table at from into the table on top. */
void aux_copyfields(lua_State *L, int from);

/* A kind of userdata: its metatable is made at the first object of the
** kind (aux_setclass), so that a module's require makes none of them. */
typedef struct AuxClass {
  const char *name;          /* registry key and __name, as luaL_newmetatable */
  const luaL_Reg *meta;      /* metamethods */
  const luaL_Reg *methods;   /* the __index table's functions; NULL: none */
  int selfup;                /* each function gets the metatable as upvalue 1 */
} AuxClass;

/* The table on top, complete, becomes the metatable name (its __name,
** and registry[name]), as luaL_newmetatable would have made it. */
void aux_registerclass(lua_State *L, const char *name);

/* Set the metatable of the value on top to c's, making it first if the
** registry has none.  It is registered only once complete: a memory error
** while it is made leaves nothing half made. */
void aux_setclass(lua_State *L, const AuxClass *c);

/* Push a new table with weak keys ("k"), values ("v") or both ("kv"). */
void aux_pushweak(lua_State *L, const char *mode);

#endif

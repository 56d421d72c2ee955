/*
** lib.h - the Lua modules compiled into the library (lua/ at build time:
** cmake/embed.c generates lua_modules.c) and how lib.c loads them.
*/
#ifndef LSOCK_LIB_H
#define LSOCK_LIB_H

#include <stddef.h>

#include "lua.h"

/* ---- Lua modules compiled in (generated lua_modules.c) ------------- */
typedef struct LuaModule {
  const char *name;
  const char *code; size_t len;           /* its source */
  const char *bytecode; size_t bclen;     /* lua_dump of it, debug information kept */
} LuaModule;
extern const LuaModule lib_modules[];
/* The name of a bundled module's chunk (%s: the module's name). */
#define LIB_CHUNKNAME "=[luasock] %s"
/* Load the bundled module name as a chunk: its bytecode, or its source
** where this Lua's loader rejects the bytecode (another Lua than the one
** the build made it with).  Raises if the module is missing. */
void lib_loadmodule(lua_State *L, const char *name);
/* Preload luasock.ssl and the bundled Lua modules under the names they
** have in the stock lua5.4 (module.c). */
void lib_preloadportable(lua_State *L);

#endif

/* main.c - stub host, to be replaced: runs a script with socket preloaded. */
#include <stdio.h>

#include "lualib.h"

#include "lsock.h"

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  luasock_openlibs(L);
  lua_createtable(L, argc, 0);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  int status = argc > 1 ? luaL_dofile(L, argv[1]) : LUA_OK;
  if (status != LUA_OK) fprintf(stderr, "luasock: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}

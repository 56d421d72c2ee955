/* reader.c - stub, to be written. */
#include "lsock.h"

const luaL_Reg stream_methods[] = {
  {NULL, NULL}
};

void stream_open(lua_State *L) { (void)L; }

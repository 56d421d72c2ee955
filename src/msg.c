/* msg.c - stub, to be written. */
#include "lsock.h"

const luaL_Reg msg_methods[] = {
  {NULL, NULL}
};

const luaL_Reg msg_funcs[] = {
  {NULL, NULL}
};

/* select.c - stub, to be written. */
#include "lsock.h"

const luaL_Reg select_funcs[] = {
  {NULL, NULL}
};

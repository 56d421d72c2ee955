/* addr.c - stub, to be written. */
#include "lsock.h"

const luaL_Reg addr_funcs[] = {
  {NULL, NULL}
};

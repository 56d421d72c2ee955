/* sockio.c - stub, to be written. */
#include "lsock.h"

const luaL_Reg sockio_methods[] = {
  {NULL, NULL}
};

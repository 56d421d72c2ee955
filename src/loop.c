/* loop.c - stub, to be written: no tasks yet, every wait polls. */
#include "lsock.h"

const luaL_Reg loop_funcs[] = {
  {NULL, NULL}
};

void loop_open(lua_State *L) { (void)L; }
Task *loop_current(lua_State *L) { (void)L; return NULL; }
void loop_park(Task *t, Watch *w, int dir, double deadline) { (void)t; (void)w; (void)dir; (void)deadline; }
void loop_parkthread(Task *t, void (*work)(void *), void *arg) { (void)t; (void)work; (void)arg; }
int loop_outcome(Task *t) { (void)t; return 0; }
void loop_unwatch(Watch *w, int wake) { (void)w; (void)wake; }

/*
** interrupt.c - Ctrl-C.  luasock_interrupt asks a state to stop what it
** runs with the error "interrupted!", as lua.c's SIGINT handler does: a
** hook raises at the next Lua instruction, of the main thread and of the
** task being resumed.  Where no Lua code runs (a poll or epoll_wait in a
** wait, the loop between two tasks) the flag of the state's Loop raises
** instead: the waits check it on EINTR and before they sleep
** (interrupt_check), and the Loop's eventfd, written here, ends an
** epoll_wait that the signal reached on another thread.  All of it is
** per state: two states on two threads never stop each other.
**
** Nothing here is process-wide: the luasock program's SIGINT handler
** (program/sigint.c) keeps the state it stops, as lua.c does, and calls
** luasock_interrupt or interrupt_waits; an embedder calls
** luasock_interrupt from its own handler.
*/

#include "loop_internal.h"
#include "luasock.h"
#include "core/interrupt.h"
#include "core/loop.h"

/* The hook lua.c installs on Ctrl-C: raise at the next Lua instruction.
** In a task the flag stays set: the task ends with this error, then the
** loop sees the flag and raises "interrupted!" in its caller. */
static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  Loop *loop = loop_of(L);
  if (loop != NULL && loop_current(L) == NULL) loop->interrupted = 0, loop->stopped = 1;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

/* Only async-signal-safe steps: lua_sethook (as lua.c), plain stores and
** write(2).  Hooks are per thread: the task running now is stopped as
** well as L, so that a task spinning in Lua code stops too. */
void luasock_interrupt(lua_State *L) {
  int mask = LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT;
  Loop *loop = loop_peek(L);
  lua_sethook(L, stop_hook, mask, 1);
  if (loop != NULL && loop->resumed != NULL) lua_sethook(loop->resumed, stop_hook, mask, 1);
  interrupt_waits(L);
}

/* Signal-safe too: a flag and write(2). */
void interrupt_waits(lua_State *L) {
  Loop *loop = loop_peek(L);
  if (loop == NULL) return;
  loop->interrupted = 1;
  loop_wakeup(loop);
}

int interrupt_pending(lua_State *L) {
  Loop *loop = loop_of(L);
  return loop != NULL && loop->interrupted;
}

/* The hook was set on the main thread: remove it there, since we raise
** from here (no Lua code runs while a C wait sits in poll).  In a task we
** raise as stop_hook does there: the flag and the main thread's hook
** stay, so that the code outside the tasks stops too. */
void interrupt_check(lua_State *L) {
  if (!interrupt_pending(L)) return;
  if (loop_current(L) != NULL) {
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
  }
  loop_of(L)->interrupted = 0;
  loop_of(L)->stopped = 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_sethook(lua_tothread(L, -1), NULL, 0, 0);
  lua_pop(L, 1);
  luaL_error(L, "interrupted!");
}

int interrupt_raised(lua_State *L) {
  Loop *loop = loop_of(L);
  return loop != NULL && loop->stopped;
}

void interrupt_unmark(lua_State *L) {
  Loop *loop = loop_of(L);
  if (loop != NULL) loop->stopped = 0;
}

int interrupt_clear(lua_State *L) {
  if (!interrupt_pending(L)) return 0;
  loop_of(L)->interrupted = 0;
  lua_sethook(L, NULL, 0, 0);
  return 1;
}

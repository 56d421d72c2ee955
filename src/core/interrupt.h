/*
** core/interrupt.h - Ctrl-C (interrupt.c): the checks the waits make,
** and the luasock program's SIGINT handlers.  luasock_interrupt itself is
** public (luasock.h).
*/
#ifndef LSOCK_INTERRUPT_H
#define LSOCK_INTERRUPT_H

#include "lua.h"

/* ---- interrupt.c: Ctrl-C (luasock_interrupt, in luasock.h) ---------- */
/* Raise "interrupted!" if luasock_interrupt was called on this state and
** no hook raised it yet: waits call it on EINTR and before they sleep. */
void interrupt_check(lua_State *L);
int interrupt_pending(lua_State *L);  /* whether interrupt_check would raise */
/* Forget an interrupt not raised yet (flag and hook): one that came after
** a chunk's last instruction must not stop what runs next.  Returns
** whether there was one. */
int interrupt_clear(lua_State *L);
/* The luasock program's SIGINT handler, which interrupts L.  INTERRUPT_OFF:
** the default action; INTERRUPT_CHUNK: while a chunk runs (a second
** Ctrl-C ends the process, as in lua.c); INTERRUPT_PROMPT: at the REPL's
** prompt, where only the next wait gives up.  Returns the mode before
** (OFF when the handler was not ours), for the caller to put back. */
enum { INTERRUPT_OFF, INTERRUPT_CHUNK, INTERRUPT_PROMPT };
int interrupt_catch(lua_State *L, int mode);

#endif

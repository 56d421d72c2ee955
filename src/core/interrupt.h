/*
** core/interrupt.h - Ctrl-C (interrupt.c): the checks the waits make
** and what a SIGINT handler calls.  luasock_interrupt itself is public
** (luasock.h); the luasock program's handler is program/sigint.c.
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
/* Whether Ctrl-C raised "interrupted!" in the code outside the tasks
** since the last interrupt_unmark: an outside wait tells so its Ctrl-C
** from a script's error, whatever that error's text.  Reading leaves the
** mark, so that a wait whose turn ran another outside wait still sees
** the Ctrl-C that went through both. */
int interrupt_raised(lua_State *L);
void interrupt_unmark(lua_State *L);
/* Make L's next wait raise "interrupted!" (and end an epoll_wait or a
** poll in progress), without stopping Lua code: the luasock program's
** handler at the REPL's prompt, where the REPL's own calls must not
** raise.  Async-signal-safe, as luasock_interrupt. */
void interrupt_waits(lua_State *L);

#endif

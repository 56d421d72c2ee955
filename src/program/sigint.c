/*
** sigint.c - the luasock program's Ctrl-C: SIGINT handlers that stop the
** state the program runs, as lua.c's do.  A handler must know that state:
** the pointer below is the program's, like lua.c's globalL; the library
** keeps nothing process-wide (core/interrupt.c), so an embedder running
** states on several threads has no such pointer at all.
*/
#include <signal.h>
#include <string.h>

#include "luasock.h"
#include "core/interrupt.h"
#include "program/program.h"

static lua_State *volatile sigint_state = NULL;   /* what SIGINT stops */

static void set_handler(void (*handler)(int));

/* While a chunk runs: stop it.  A second Ctrl-C ends the process, as in
** lua.c, for code stuck where no hook runs. */
static void on_sigint_chunk(int sig) {
  (void)sig;
  set_handler(SIG_DFL);
  luasock_interrupt(sigint_state);
}

/* At the REPL's prompt no chunk runs, and the REPL's own Lua calls
** (print, a __tostring of _PROMPT) must not raise: only the next wait
** gives up, and the REPL drops the line. */
static void on_sigint_prompt(int sig) {
  (void)sig;
  interrupt_waits(sigint_state);
}

/* sigaction without SA_RESTART: a poll(2) in a socket wait must return
** EINTR so that it can raise "interrupted!". */
static void set_handler(void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}

int sigint_catch(lua_State *L, int mode) {
  static void (*const handlers[])(int) = { SIG_DFL, on_sigint_chunk, on_sigint_prompt };
  struct sigaction before;
  sigaction(SIGINT, NULL, &before);
  int old = SIGINT_OFF;
  if (before.sa_handler == on_sigint_chunk) old = SIGINT_CHUNK;
  if (before.sa_handler == on_sigint_prompt) old = SIGINT_PROMPT;
  sigint_state = L;
  set_handler(handlers[mode]);
  return old;
}

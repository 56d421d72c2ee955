/*
** program/program.h - what main.c and repl.c, the luasock program, share.
** Not part of the library.
*/
#ifndef LSOCK_PROGRAM_H
#define LSOCK_PROGRAM_H

#include "lua.h"
#include "lauxlib.h"

/* ---- main.c, repl.c: the luasock program (not in the library) ------ */
/* lua_pcall of the function below narg arguments with a traceback handler
** and Ctrl-C armed (luasock_interrupt); returns the pcall status. */
int main_docall(lua_State *L, int narg, int nres);
void main_message(const char *pname, const char *msg);  /* "pname: msg" on stderr */
void repl_run(lua_State *L);          /* read-eval-print until end of input */

/* ---- sigint.c: Ctrl-C ------------------------------------------------ */
/* Set the SIGINT handler, which interrupts L.  SIGINT_OFF: the default
** action; SIGINT_CHUNK: while a chunk runs (a second Ctrl-C ends the
** process, as in lua.c); SIGINT_PROMPT: at the REPL's prompt, where only
** the next wait gives up.  Returns the mode before (OFF when the handler
** was not ours), for the caller to put back. */
enum { SIGINT_OFF, SIGINT_CHUNK, SIGINT_PROMPT };
int sigint_catch(lua_State *L, int mode);

/* ---- alloc.c: the program's Lua allocator ---------------------------- */
typedef struct Arena Arena;
/* Make L allocate its small blocks from size classes (none under
** AddressSanitizer); returns what alloc_free releases after lua_close. */
Arena *alloc_use(lua_State *L);
void alloc_free(Arena *a);

#endif

/*
** repl.c - the interactive loop: read a statement with GNU readline
** (history kept in ~/.luasock_history), compile it, run it, print its
** values.  `socket` is a global here, and only here.
**
** Shaped after lua.c's doREPL: a line is first tried as `return <line>`,
** then as a statement, reading more lines while the parser stops at
** <eof>.  Tasks spawned at the prompt run while the REPL waits for a key
** and while a line waits for a socket: every wait outside a task turns
** the event loop (wait_fdready).  The rest knows nothing of the loop.
**
** Unlike lua5.4, Ctrl-C at the prompt drops the line being typed (as a
** shell does) instead of ending the program; Ctrl-D leaves.  A statement
** that Ctrl-C stopped reports one line, "interrupted!", no traceback.
**
** Output of tasks while the prompt waits (print, io.write, io.stderr,
** error reports) must not land after the prompt: stdout and stderr (the C
** streams and io's) go through screen streams that clear the prompt line
** first, then redraw the prompt and the half-typed line under the output.
** Output written straight to the descriptors (a child process) bypasses
** them.
*/
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/readline.h>
#include <readline/history.h>

#include <lualib.h>   /* LUA_IOLIBNAME */

#include "core/interrupt.h"
#include "core/wait.h"
#include "program/program.h"

#define HISTORY_FILE ".luasock_history"
#define HISTORY_MAX 1000        /* entries kept in memory and on disk */
#define EOFMARK "<eof>"         /* end of the parser's "incomplete" errors */

enum { READ_LINE, READ_EOF, READ_CANCEL };   /* what read_line got */
enum { LOAD_EOF = -1, LOAD_CANCEL = -2 };    /* load_line, besides a status */

static char *history_path = NULL;   /* NULL: no history on disk */
static char *line_got;              /* what readline handed to on_line */
static int line_ready;              /* on_line was called */

/* The screen while a line is read: a prompt waits for keys (reading); the
** prompt and line are visible (shown), or output took their place and left
** the cursor at column 0 or mid-line (partial). */
static struct {
  int reading, shown, partial;
  FILE *out, *err;          /* the real stdout and stderr */
} screen;

/* ---- history ------------------------------------------------------- */

/* Load ~/.luasock_history (terminal sessions only).  Timestamps mark
** where entries start, so multi-line statements stay one entry. */
static void history_open(void) {
  const char *home = getenv("HOME");
  if (home == NULL || home[0] == '\0' || !isatty(STDIN_FILENO)) return;
  size_t n = strlen(home) + sizeof("/" HISTORY_FILE);
  history_path = malloc(n);
  if (history_path == NULL) return;
  snprintf(history_path, n, "%s/%s", home, HISTORY_FILE);
  history_comment_char = '#';      /* timestamps are "#<time>" lines */
  history_write_timestamps = 1;
  history_multiline_entries = 1;
  stifle_history(HISTORY_MAX);
  if (read_history(history_path) == 0 && history_length >= HISTORY_MAX)
    write_history(history_path);   /* keep the file bounded too */
}

/* Remember a statement, in memory and at the end of the file, at once, so
** that a session that is killed loses nothing. */
static void history_save(const char *line) {
  if (line[0] == '\0') return;
  add_history(line);
  if (history_path && append_history(1, history_path) != 0)
    write_history(history_path);   /* the first session: no file yet */
}

/* ---- the screen under the prompt ---------------------------------- */

/* Output is coming: take the prompt's line off the screen. */
static void screen_clear(void) {
  if (!screen.shown) return;
  rl_clear_visible_line();
  fflush(rl_outstream);
  screen.shown = 0;
}

/* Put the prompt and the line being typed back, on a line of their own. */
static void screen_redraw(void) {
  if (!screen.reading || screen.shown) return;
  if (screen.partial) fputc('\n', screen.out);
  screen.partial = 0;
  rl_on_new_line();
  rl_redisplay();
  fflush(rl_outstream);
  screen.shown = 1;
}

/* Write function of the screen streams (cookie: the real FILE).  A whole
** line redraws the prompt at once; a partial one waits for the rest, or
** for the next key. */
static ssize_t screen_write(void *cookie, const char *buf, size_t n) {
  FILE *real = cookie;
  if (n == 0) return 0;
  screen_clear();
  fflush(screen.out);   /* stdout's and stderr's bytes keep their order */
  size_t put = fwrite(buf, 1, n, real);
  fflush(real);
  if (put == 0) return -1;
  screen.partial = buf[put - 1] != '\n';
  if (!screen.partial) screen_redraw();
  return (ssize_t)put;
}

/* A stream writing to real through screen_write, buffered as mode. */
static FILE *screen_open(FILE *real, int mode) {
  cookie_io_functions_t io = { .write = screen_write };
  FILE *f = fopencookie(real, "w", io);
  if (f != NULL) setvbuf(f, NULL, mode, BUFSIZ);
  return f;
}

/* Make io.stdout or io.stderr (name) write to f instead of from; returns
** whether it did (io is loaded and the file still the standard one). */
static int io_swap(lua_State *L, const char *name, FILE *from, FILE *f) {
  int done = 0;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_IOLIBNAME) == LUA_TTABLE) {
    lua_getfield(L, -1, name);
    luaL_Stream *p = luaL_testudata(L, -1, LUA_FILEHANDLE);
    if (p != NULL && p->closef != NULL && p->f == from) {
      p->f = f;
      done = 1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return done;
}

/* Route stdout and stderr (C's and io's) through screen streams; readline
** keeps the real stdout.  Without streams, output goes as it did. */
static void screen_open_all(lua_State *L) {
  screen.out = stdout, screen.err = stderr;
  rl_outstream = screen.out;
  FILE *out = screen_open(screen.out, _IOLBF), *err = screen_open(screen.err, _IONBF);
  if (out == NULL || err == NULL) {
    if (out) fclose(out);
    if (err) fclose(err);
    return;
  }
  fflush(screen.out);
  io_swap(L, "stdout", screen.out, out);
  io_swap(L, "stderr", screen.err, err);
  stdout = out, stderr = err;   /* glibc's streams are variables */
}

/* Back to the real streams, flushing what is pending. */
static void screen_close_all(lua_State *L) {
  FILE *out = stdout, *err = stderr;
  if (screen.out == NULL || out == screen.out) return;
  io_swap(L, "stdout", out, screen.out);
  io_swap(L, "stderr", err, screen.err);
  stdout = screen.out, stderr = screen.err;
  fclose(out);
  fclose(err);
}

/* ---- reading a line ------------------------------------------------ */

static void on_line(char *line) {
  line_got = line;
  line_ready = 1;
  screen.reading = screen.shown = 0;
  rl_callback_handler_remove();   /* the terminal is ours again */
}

/* Ctrl-C at the prompt: show ^C, forget the line and leave the terminal
** as it was. */
static void cancel_line(void) {
  screen_redraw();   /* the ^C goes after the line, wherever output left it */
  screen.reading = screen.shown = 0;
  rl_callback_sigcleanup();
  rl_echo_signal_char(SIGINT);
  rl_replace_line("", 1);
  rl_callback_handler_remove();
  fputs("\n", rl_outstream);
  fflush(rl_outstream);
}

/* Wait until stdin is readable (protected by main_docall, Ctrl-C armed).
** The loop turns meanwhile when tasks exist (wait_fdready), so a server
** spawned at the prompt serves while the user types.  Pushes the result. */
static int wait_stdin(lua_State *L) {
  lua_pushinteger(L, wait_fdready(L, STDIN_FILENO, POLLIN, -1));
  return 1;
}

/* One wait for a key: 0 ready, READ_CANCEL on Ctrl-C (or an error in the
** loop, reported), READ_EOF when stdin cannot be waited on. */
static int wait_key(lua_State *L) {
  lua_pushcfunction(L, wait_stdin);
  int status = main_docall(L, 0, 1);
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL || strncmp(msg, "interrupted!", 12) != 0) main_message(NULL, msg);
    lua_pop(L, 1);
    return READ_CANCEL;
  }
  int err = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return err == 0 ? 0 : READ_EOF;
}

/* Show prompt and read one line (readline's callback interface).  Returns
** READ_LINE with *line (malloc'd, no newline), READ_EOF, or READ_CANCEL
** when Ctrl-C dropped the line.  Tasks run while we wait for each key. */
static int read_line(lua_State *L, const char *prompt, char **line) {
  line_ready = 0;
  fflush(stdout);   /* the statement's output first, then the prompt */
  fflush(stderr);
  rl_callback_handler_install(prompt, on_line);
  screen.reading = screen.shown = 1;
  screen.partial = 0;
  while (!line_ready && !interrupt_pending(L)) {   /* Ctrl-C between keys */
    int got = wait_key(L);
    screen_redraw();   /* after output that ended mid-line */
    if (got == 0) rl_callback_read_char();
    else if (got == READ_CANCEL) break;
    else on_line(NULL);   /* cannot wait: end of input */
  }
  interrupt_clear(L);   /* a Ctrl-C at the prompt was for this line */
  if (!line_ready) {
    cancel_line();
    return READ_CANCEL;
  }
  *line = line_got;
  return line_got ? READ_LINE : READ_EOF;
}

/* ---- compiling a statement ----------------------------------------- */

/* The prompt: tostring(_PROMPT) (_PROMPT2 for a continuation) or the
** default.  Leaves it on the stack (readline copies it). */
static const char *push_prompt(lua_State *L, int firstline) {
  if (lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2") == LUA_TNIL) {
    lua_pop(L, 1);
    return lua_pushstring(L, firstline ? "> " : ">> ");
  }
  const char *p = luaL_tolstring(L, -1, NULL);
  lua_remove(L, -2);
  return p;
}

/* Read a line and push it ("=x" means "return x", as in Lua 5.2).
** Returns what read_line got; pushes only for READ_LINE. */
static int push_line(lua_State *L, int firstline) {
  char *b;
  int got = read_line(L, push_prompt(L, firstline), &b);
  lua_pop(L, 1);   /* the prompt */
  if (got != READ_LINE) return got;
  size_t len = strlen(b);
  if (len > 0 && b[len - 1] == '\n') b[--len] = '\0';
  if (firstline && b[0] == '=')
    lua_pushfstring(L, "return %s", b + 1);
  else
    lua_pushlstring(L, b, len);
  free(b);
  return READ_LINE;
}

/* A syntax error at <eof> means the statement goes on: pop its message. */
static int incomplete(lua_State *L, int status) {
  size_t len, mark = sizeof(EOFMARK) - 1;
  if (status != LUA_ERRSYNTAX) return 0;
  const char *msg = lua_tolstring(L, -1, &len);
  if (len < mark || strcmp(msg + len - mark, EOFMARK) != 0) return 0;
  lua_pop(L, 1);
  return 1;
}

/* Try the line on top as `return <line>;`.  On success replaces it by the
** compiled chunk; else leaves the line alone. */
static int add_return(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *retline = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  if (status != LUA_OK) {
    lua_pop(L, 2);   /* the message and retline */
    return status;
  }
  lua_remove(L, -2);   /* retline */
  history_save(line);
  return LUA_OK;
}

/* Compile the statement at index 1, reading continuation lines while it
** is incomplete.  Pushes the chunk or an error message and returns the
** load status, or returns LOAD_CANCEL (Ctrl-C) with nothing pushed. */
static int multiline(lua_State *L) {
  for (;;) {
    size_t len;
    const char *code = lua_tolstring(L, 1, &len);
    int status = luaL_loadbuffer(L, code, len, "=stdin");
    if (!incomplete(L, status)) {
      history_save(code);
      return status;
    }
    int got = push_line(L, 0);
    if (got == READ_CANCEL) return LOAD_CANCEL;
    if (got == READ_EOF) {          /* report what the parser says */
      history_save(code);
      return luaL_loadbuffer(L, code, len, "=stdin");
    }
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);               /* statement .. "\n" .. line */
  }
}

/* Read and compile one statement: leaves the chunk (or the error message)
** alone on the stack and returns the load status, LOAD_EOF or LOAD_CANCEL. */
static int load_line(lua_State *L) {
  lua_settop(L, 0);
  int got = push_line(L, 1);
  if (got != READ_LINE) return got == READ_EOF ? LOAD_EOF : LOAD_CANCEL;
  int status = add_return(L);
  if (status != LUA_OK) status = multiline(L);
  if (status != LOAD_CANCEL) lua_remove(L, 1);   /* the source */
  return status;
}

/* ---- running it ---------------------------------------------------- */

/* Run the compiled chunk on top; leaves its results or the error message.
** It runs on the main thread, not as a task: its blocking calls block it
** as in a script, while the loop runs the tasks (wait.c, task_turn). */
static int run_chunk(lua_State *L) {
  return main_docall(L, 0, LUA_MULTRET);
}

/* print(...) every value on the stack, if any. */
static void print_results(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0) return;
  luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
  lua_getglobal(L, "print");
  lua_insert(L, 1);
  if (lua_pcall(L, n, 0, 0) != LUA_OK)
    main_message(NULL, lua_pushfstring(L, "error calling 'print' (%s)",
                                       lua_tostring(L, -1)));
}

/* The REPL's global socket = require "socket"; a failure is reported and
** the REPL goes on without it. */
static void set_socket_global(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "socket");
  if (main_docall(L, 1, 1) == LUA_OK) {
    lua_setglobal(L, "socket");
  } else {
    main_message(NULL, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}

/* Whether msg's first line is the interrupt's error, "interrupted!" alone
** or after a position ("stdin:1: interrupted!"). */
static int is_interrupt(const char *msg) {
  static const char word[] = "interrupted!";
  size_t n = sizeof word - 1, len = strcspn(msg, "\n");
  if (len < n || memcmp(msg + len - n, word, n) != 0) return 0;
  return len == n || (len >= n + 2 && memcmp(msg + len - n - 2, ": ", 2) == 0);
}

/* Report the error on top (no program name here) and pop it.  A statement
** that Ctrl-C stopped says only "interrupted!": where it was stopped is
** no news to the user who pressed the keys. */
static void report_error(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  main_message(NULL, msg != NULL && is_interrupt(msg) ? "interrupted!" : msg);
  lua_pop(L, 1);
}

void repl_run(lua_State *L) {
  int status;
  rl_readline_name = "luasock";   /* for $if luasock in ~/.inputrc */
  rl_catch_signals = 0;           /* Ctrl-C is ours: read_line, main_docall */
  sigint_catch(L, SIGINT_PROMPT);   /* main_docall puts it back after each run */
  screen_open_all(L);
  history_open();
  set_socket_global(L);
  lua_pushboolean(L, 1);   /* socket.run{workers} refuses to fork the REPL */
  lua_setfield(L, LUA_REGISTRYINDEX, "luasock.repl");
  while ((status = load_line(L)) != LOAD_EOF) {
    if (status == LOAD_CANCEL) continue;
    if (status == LUA_OK) status = run_chunk(L);
    if (status == LUA_OK) print_results(L);
    else report_error(L);
  }
  lua_settop(L, 0);
  fputs("\n", stdout);
  fflush(stdout);
  screen_close_all(L);
  free(history_path);
  history_path = NULL;
  sigint_catch(L, SIGINT_OFF);
}

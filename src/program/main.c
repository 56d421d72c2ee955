/*
** main.c - the luasock program: lua5.4's command line on top of the
** library.  Options, the `arg` table, LUA_INIT, running chunks with a
** traceback and Ctrl-C, the exit status.  The REPL is in repl.c.
**
** It behaves as lua.c of Lua 5.4.4 does (same messages, same order of
** work), so nobody has to learn a new command line.  The only visible
** differences: the version line names luasock, `-h`/`--help` and
** `--version` print and exit, `require "socket"` works (luasock_openlibs),
** SIGPIPE is caught (a write to a dead peer reports EPIPE instead of
** killing the process), and the REPL has the `socket` global.
*/
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lualib.h"

#include "luasock.h"
#include "core/interrupt.h"
#include "program/program.h"

/* Options collected before any Lua code runs, as bits. */
enum { OPT_ERROR = 1, OPT_I = 2, OPT_V = 4, OPT_E = 8, OPT_NOENV = 16,
       OPT_HELP = 32, OPT_VERSION = 64 };

static const char *progname = "luasock";  /* argv[0] once known */

void main_message(const char *pname, const char *msg) {
  if (pname) fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
  fflush(stderr);
}

/* If status is an error, print the message on top of the stack (prefixed
** with the program name) and pop it.  Returns status. */
static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    main_message(progname, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return status;
}

/* Message handler of every chunk: the error as a string (through
** __tostring if it has one) with a traceback appended. */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;   /* an object that describes itself: no traceback */
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Ctrl-C stops the chunk (sigint.c).  The handler in place before
** comes back afterwards: the default in a script (as lua.c), the REPL's
** own at the prompt.  An interrupt that came after the chunk's last
** instruction must not stop whatever runs next: it is dropped. */
int main_docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;   /* the function's index */
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  int before = sigint_catch(L, SIGINT_CHUNK);
  int status = lua_pcall(L, narg, nres, base);
  sigint_catch(L, before);
  interrupt_clear(L);
  lua_remove(L, base);
  return status;
}

static void print_version(void) {
  fputs(LUASOCK_VERSION "  " LUA_COPYRIGHT "\n", stdout);
  fflush(stdout);
}

/* The usage message of lua5.4, word for word (%s: the program's name). */
static const char usage[] =
  "usage: %s [options] [script [args]]\n"
  "Available options are:\n"
  "  -e stat   execute string 'stat'\n"
  "  -i        enter interactive mode after executing 'script'\n"
  "  -l mod    require library 'mod' into global 'mod'\n"
  "  -l g=mod  require library 'mod' into global 'g'\n"
  "  -v        show version information\n"
  "  -E        ignore environment variables\n"
  "  -W        turn warnings on\n"
  "  --        stop handling options\n"
  "  -         stop handling options and execute stdin\n";

static void print_usage(const char *badoption) {
  fprintf(stderr, "%s: ", progname);
  if (badoption[1] == 'e' || badoption[1] == 'l')
    fprintf(stderr, "'%s' needs argument\n", badoption);
  else
    fprintf(stderr, "unrecognized option '%s'\n", badoption);
  fprintf(stderr, usage, progname);
  fflush(stderr);
}

/* Where the documentation of this very program is installed: the doc
** directory beside its bin directory (LUASOCK_DOCS_FROM_BIN is that path
** relative to bin, as installed).  NULL when not there, as for a program
** run from its build directory. */
static const char *installed_docdir(void) {
  static char exe[PATH_MAX], dir[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return NULL;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  size_t room = sizeof exe - (size_t)(slash + 1 - exe);
  if ((size_t)snprintf(slash + 1, room, "%s", LUASOCK_DOCS_FROM_BIN) >= room)
    return NULL;
  return realpath(exe, dir);   /* NULL if it does not exist */
}

/* -h, --help: lua5.4's usage, luasock's own options, where to read on. */
static void print_help(void) {
  const char *docdir = installed_docdir();
  printf(usage, progname);
  printf("luasock adds:\n"
    "  -h, --help  show this help and exit\n"
    "  --version   show version information and exit\n"
    "\n"
    "Runs Lua 5.4 with the socket module: require \"socket\" gives sockets\n"
    "shaped like Python's, and tasks (socket.spawn, socket.run) that serve\n"
    "many connections from blocking-style code.  With no script and a\n"
    "terminal on stdin it starts a REPL: readline editing, history in\n"
    "~/.luasock_history, `socket` ready as a global, Ctrl-C interrupts.\n"
    "\n"
    "Manual: man luasock\n");
  if (docdir)
    printf("README and example scripts: %s, %s/examples\n", docdir, docdir);
  else
    printf("README and example scripts: README.md and scripts/ in the source\n");
  fflush(stdout);
}

/* The global `arg`: argv[script] at index 0, the script's arguments at
** positive indices, the interpreter and its options at negative ones.
** With no script (script == argc) the interpreter's name is at 0. */
static void create_argtable(lua_State *L, char **argv, int argc, int script) {
  if (script == argc) script = 0;
  lua_createtable(L, argc - (script + 1), script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Run the chunk a load function left (status is its result) and report. */
static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = main_docall(L, 0, 0);
  return report(L, status);
}

static int dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));   /* name NULL: stdin */
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod or -l g=mod: global g (or mod) = require(mod). */
static int dolibrary(lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  const char *modname = eq ? eq + 1 : spec;
  size_t globlen = eq ? (size_t)(eq - spec) : strlen(spec);
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  int status = main_docall(L, 1, 1);
  if (status == LUA_OK) {
    const char *globname = lua_pushlstring(L, spec, globlen);
    lua_pushvalue(L, -2);
    lua_setglobal(L, globname);
    lua_pop(L, 2);   /* the name and the module */
  }
  return report(L, status);
}

/* LUA_INIT_5_4, else LUA_INIT: a chunk, or @file. */
static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dofile(L, init + 1);
  return dostring(L, init, name);
}

/* Push arg[1] .. arg[#arg], the script's arguments; returns how many. */
static int pushargs(lua_State *L) {
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  int n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (int i = 1; i <= n; i++)
    lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);   /* the table */
  return n;
}

/* Run the script argv[0] with its arguments; "-" is stdin unless it
** comes after "--". */
static int handle_script(lua_State *L, char **argv) {
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
    fname = NULL;
  int status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = main_docall(L, n, LUA_MULTRET);
  }
  return report(L, status);
}

/* Bits of an option that takes no argument ("-v", not "-vx"). */
static int flag_bits(const char *opt) {
  if (opt[2] != '\0') return OPT_ERROR;
  switch (opt[1]) {
    case 'E': return OPT_NOENV;
    case 'W': return 0;                 /* handled in order by runargs */
    case 'i': return OPT_I | OPT_V;     /* -i implies -v */
    case 'v': return OPT_V;
    default: return OPT_ERROR;
  }
}

/* Scan the options before any Lua code runs.  Returns their bits, or
** OPT_ERROR with *first at the bad option, or OPT_HELP or OPT_VERSION
** alone at the first of those; else *first is the script's index (argc
** when there is none). */
static int collectargs(char **argv, int *first) {
  int args = 0, i;
  for (i = 1; argv[i] != NULL; i++) {
    const char *a = argv[i];
    *first = i;
    if (a[0] != '-' || a[1] == '\0') return args;   /* script, or "-" */
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return OPT_HELP;
    if (strcmp(a, "--version") == 0) return OPT_VERSION;
    if (a[1] == '-') {                              /* "--" ends the options */
      if (a[2] != '\0') return OPT_ERROR;
      *first = i + 1;
      return args;
    }
    if (a[1] == 'e' || a[1] == 'l') {
      if (a[1] == 'e') args |= OPT_E;
      if (a[2] == '\0' && (argv[++i] == NULL || argv[i][0] == '-'))
        return OPT_ERROR;                           /* needs an argument */
      continue;
    }
    if (flag_bits(a) == OPT_ERROR) return OPT_ERROR;
    args |= flag_bits(a);
  }
  *first = i;
  return args;
}

/* Run -e, -l and -W in command-line order, up to the script (index n).
** Returns 0 as soon as one fails. */
static int runargs(lua_State *L, char **argv, int n) {
  for (int i = 1; i < n; i++) {
    int option = argv[i][1];
    if (option == 'W') lua_warning(L, "@on", 0);
    if (option != 'e' && option != 'l') continue;
    const char *extra = argv[i] + 2;   /* "-eCODE" or "-e CODE" */
    if (*extra == '\0') extra = argv[++i];
    int status = option == 'e' ? dostring(L, extra, "=(command line)")
                               : dolibrary(L, extra);
    if (status != LUA_OK) return 0;
  }
  return 1;
}

/* What runs after the options: the script, then the REPL or stdin. */
static int run_main(lua_State *L, char **argv, int argc, int script, int args) {
  if (script < argc && handle_script(L, argv + script) != LUA_OK)
    return 0;
  if (args & OPT_I) {
    repl_run(L);
  } else if (script == argc && !(args & (OPT_E | OPT_V))) {
    if (isatty(STDIN_FILENO)) {
      print_version();
      repl_run(L);
    } else {
      dofile(L, NULL);   /* the script is stdin */
    }
  }
  return 1;
}

/* The whole program, in protected mode (lua.c's pmain): pushes true when
** everything went well. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script;
  int args = collectargs(argv, &script);
  luaL_checkversion(L);
  if (argv[0][0]) progname = argv[0];
  if (args == OPT_ERROR) {
    print_usage(argv[script]);
    return 0;
  }
  if (args == OPT_HELP || args == OPT_VERSION) {   /* print, run nothing */
    if (args == OPT_HELP) print_help(); else print_version();
    lua_pushboolean(L, 1);
    return 1;
  }
  if (args & OPT_V) print_version();
  if (args & OPT_NOENV) {   /* package.path and cpath ignore LUA_PATH... */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luasock_openlibs(L);
  create_argtable(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);   /* as lua5.4 does */
  if (!(args & OPT_NOENV) && handle_luainit(L) != LUA_OK) return 0;
  if (!runargs(L, argv, script)) return 0;
  lua_pushboolean(L, run_main(L, argv, argc, script, args));
  return 1;
}

static void on_sigpipe(int sig) {
  (void)sig;
}

/* SIGPIPE must not kill us: a write to a dead peer returns EPIPE instead.
** A handler that does nothing does that, and unlike SIG_IGN it is not
** inherited by the programs os.execute and io.popen start. */
static void catch_sigpipe(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigpipe;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}

int main(int argc, char **argv) {
  static char name[] = "luasock";
  static char *noargs[] = { name, NULL };
  if (argc < 1) { argc = 1; argv = noargs; }   /* exec'd without argv[0] */
  catch_sigpipe();
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    main_message(argv[0], "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  Arena *arena = alloc_use(L);
  lua_gc(L, LUA_GCSTOP);   /* no collection while the state is built */
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int ok = lua_toboolean(L, -1);
  report(L, status);
  lua_close(L);
  alloc_free(arena);
  return ok && status == LUA_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}

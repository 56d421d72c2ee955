/*
** signals.c - socket.signals: POSIX signals as something to wait for, so
** that a server can end cleanly on SIGTERM from blocking-style code.
**
** The signals asked for are blocked and read from a signalfd, which the
** loop watches like a socket: sig:wait() in a task lets the others run,
** outside a task it turns the loop.  A signal that comes between two
** waits stays pending in the kernel until the next one reads it.
** sig:close() (or <close>, or collection) unblocks what it blocked, so
** the previous disposition applies again: Ctrl-C keeps working as before
** unless a script asks for "INT".
**
** Left out: the mask is per thread; the helper threads block every signal
** (pool.c), but threads of an embedding application are not ours to
** change, and a signal sent to the process may go to one of them.  Two
** objects taking the same signal share it: closing the one that blocked
** it unblocks it for both.
*/
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/aux.h"
#include "core/clock.h"
#include "core/loop.h"
#include "core/wait.h"
#include "socket.h"

#define SIGNALS_META "luasock.signals"

typedef struct Signals {
  Watch w;          /* the signalfd; fd -1 once closed */
  sigset_t set;     /* the signals it reads */
  sigset_t added;   /* those it blocked, to unblock on close */
} Signals;

/* The signals a script may ask for, by name without "SIG". */
static const struct { const char *name; int sig; } signal_names[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
  {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"ALRM", SIGALRM}, {"CHLD", SIGCHLD},
  {"WINCH", SIGWINCH}, {"PIPE", SIGPIPE}, {"CONT", SIGCONT}, {"TSTP", SIGTSTP},
  {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU}, {"URG", SIGURG}, {"XCPU", SIGXCPU},
  {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"IO", SIGIO},
  {"PWR", SIGPWR}, {"SYS", SIGSYS},
};
#define NSIGNAMES (sizeof signal_names / sizeof signal_names[0])

/* The signal named by the string at idx ("TERM" or "SIGTERM"); raises. */
static int signal_check(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (size_t i = 0; i < NSIGNAMES; i++)
    if (strcmp(signal_names[i].name, name) == 0) return signal_names[i].sig;
  return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", lua_tostring(L, idx)));
}

static const char *signal_name(int sig) {
  for (size_t i = 0; i < NSIGNAMES; i++)
    if (signal_names[i].sig == sig) return signal_names[i].name;
  return "?";   /* only those asked for are read */
}

static Signals *signals_check(lua_State *L, int idx) {
  return (Signals *)luaL_checkudata(L, idx, SIGNALS_META);
}

/* Close the signalfd and unblock what we blocked; idempotent. */
static void signals_close(lua_State *L, Signals *s) {
  if (s->w.fd < 0) return;
  loop_closewatch(L, &s->w);
  pthread_sigmask(SIG_UNBLOCK, &s->added, NULL);
}

/* Read one signal: 0 and its number in *sig, or an errno (EAGAIN: none). */
static int signals_read(Signals *s, int *sig) {
  struct signalfd_siginfo si;
  for (;;) {
    ssize_t n = read(s->w.fd, &si, sizeof si);
    if (n == (ssize_t)sizeof si) {
      *sig = (int)si.ssi_signo;
      return 0;
    }
    if (n >= 0) return EIO;   /* the kernel hands out whole records */
    if (errno != EINTR) return errno;
  }
}

/* Continuation of sig:wait: slot 1 the object, 2 the deadline. */
static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  Signals *s = signals_check(L, 1);
  if (status != LUA_OK && lua_type(L, 2) != LUA_TNUMBER) wait_changed(L);
  double deadline = lua_tonumber(L, 2);
  int err = wait_resumed(L, status);
  while (err == 0) {
    int sig = 0;   /* set when signals_read returns 0; gcc cannot see it */
    if (s->w.fd < 0) return err_push(L, LSOCK_ECLOSED);
    err = signals_read(s, &sig);
    if (err == 0) {
      lua_pushstring(L, signal_name(sig));
      return 1;
    }
    if (err != EAGAIN) break;
    err = wait_fd(L, &s->w, WAIT_READ, deadline, ctx, wait_k);
    if (err == EAGAIN) err = LSOCK_ETIMEOUT;   /* a timeout of 0 */
  }
  return err_push(L, err);
}

/* sig:wait([timeout]) -> the name of a signal that came ("TERM"); nil,
** "timeout"; nil, "closed" when closed meanwhile. */
static int signals_wait(lua_State *L) {
  Signals *s = signals_check(L, 1);
  double deadline = clock_deadline(aux_checktimeout(L, 2, 1, "timeout"));
  if (s->w.fd < 0) return luaL_error(L, "attempt to use closed signals");
  lua_settop(L, 1);
  lua_pushnumber(L, deadline);
  return wait_k(L, LUA_OK, 0);
}

static int signals_closem(lua_State *L) {
  signals_close(L, signals_check(L, 1));
  lua_pushboolean(L, 1);
  return 1;
}

static int signals_gc(lua_State *L) {
  signals_close(L, signals_check(L, 1));
  return 0;
}

static int signals_tostring(lua_State *L) {
  Signals *s = signals_check(L, 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "signals (");
  if (s->w.fd < 0) luaL_addstring(&b, "closed");
  for (size_t i = 0, n = 0; s->w.fd >= 0 && i < NSIGNAMES; i++) {
    if (!sigismember(&s->set, signal_names[i].sig)) continue;
    if (n++ > 0) luaL_addstring(&b, ", ");
    luaL_addstring(&b, signal_names[i].name);
  }
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return 1;
}

/* socket.signals(name, ...) -> a waitable for those signals, which are
** blocked until it is closed.  Raises on an unknown name; nil, message,
** errno when no signalfd can be made. */
static int lsock_signals(lua_State *L) {
  int n = lua_gettop(L);
  luaL_argcheck(L, n > 0, 1, "signal name expected");
  Signals *s = (Signals *)lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->w.fd = -1;
  sigemptyset(&s->set);
  for (int i = 1; i <= n; i++) sigaddset(&s->set, signal_check(L, i));
  luaL_setmetatable(L, SIGNALS_META);
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, &s->set, &old);
  for (size_t i = 0; i < NSIGNAMES; i++) {
    int sig = signal_names[i].sig;
    if (sigismember(&s->set, sig) && !sigismember(&old, sig)) sigaddset(&s->added, sig);
  }
  s->w.fd = signalfd(-1, &s->set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (s->w.fd < 0) {
    int err = errno;
    pthread_sigmask(SIG_UNBLOCK, &s->added, NULL);
    return err_push(L, err);
  }
  return 1;
}

static const luaL_Reg signals_methods[] = {
  {"wait", signals_wait}, {"close", signals_closem}, {NULL, NULL}
};
static const luaL_Reg signals_meta[] = {
  {"__gc", signals_gc}, {"__close", signals_gc}, {"__tostring", signals_tostring},
  {"__index", NULL}, {NULL, NULL}
};

void signals_open(lua_State *L) {
  luaL_newmetatable(L, SIGNALS_META);
  luaL_setfuncs(L, signals_meta, 0);
  luaL_newlib(L, signals_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

const luaL_Reg signals_funcs[] = {
  {"signals", lsock_signals},
  {NULL, NULL}
};

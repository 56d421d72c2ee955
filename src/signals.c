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
** unless a script asks for "INT".  Objects taking the same signal share
** its block: a count per signal (in the registry: the mask is the state's
** thread's) unblocks it when the last of them closes.
**
** Left out: the mask is per thread; the helper threads block every signal
** (pool.c), but threads of an embedding application are not ours to
** change, and a signal sent to the process may go to one of them.
*/
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/aux.h"
#include "core/loop.h"
#include "core/wait.h"
#include "socket.h"

#define SIGNALS_META "luasock.signals"

typedef struct Signals {
  Watch w;          /* the signalfd; fd -1 once closed */
  sigset_t set;     /* the signals it reads */
  sigset_t held;    /* those whose block it shares (signals_hold) */
} Signals;

static const char holds_key = 0;   /* registry: signal number -> open objects holding its block */

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

/* Push the table of holds (made on first use). */
static void holds_push(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &holds_key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &holds_key);
}

/* Add d to the holds of sig in the table on top; returns the new count. */
static lua_Integer holds_add(lua_State *L, int sig, lua_Integer d) {
  lua_Integer n = (lua_rawgeti(L, -1, sig) == LUA_TNUMBER ? lua_tointeger(L, -1) : 0) + d;
  lua_pop(L, 1);
  if (n > 0) lua_pushinteger(L, n);
  else lua_pushnil(L);
  lua_rawseti(L, -2, sig);
  return n;
}

/* Block the signals of s: it holds those that were not blocked, and those
** other objects already hold; a signal blocked by someone else (the
** embedding program) stays theirs. */
static void signals_hold(lua_State *L, Signals *s) {
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, &s->set, &old);
  holds_push(L);
  for (size_t i = 0; i < NSIGNAMES; i++) {
    int sig = signal_names[i].sig;
    if (!sigismember(&s->set, sig)) continue;
    lua_rawgeti(L, -1, sig);
    int shared = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!shared && sigismember(&old, sig)) continue;
    holds_add(L, sig, 1);
    sigaddset(&s->held, sig);
  }
  lua_pop(L, 1);
}

/* Let go of the holds of s: a signal nobody holds any more is unblocked. */
static void signals_release(lua_State *L, Signals *s) {
  sigset_t unblock;
  sigemptyset(&unblock);
  luaL_checkstack(L, 3, "no room to close signals");
  holds_push(L);
  for (size_t i = 0; i < NSIGNAMES; i++) {
    int sig = signal_names[i].sig;
    if (sigismember(&s->held, sig) && holds_add(L, sig, -1) == 0) sigaddset(&unblock, sig);
  }
  lua_pop(L, 1);
  sigemptyset(&s->held);
  pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
}

/* Close the signalfd and unblock what nobody else holds; idempotent. */
static void signals_close(lua_State *L, Signals *s) {
  if (s->w.fd < 0) return;
  loop_closewatch(L, &s->w);
  signals_release(L, s);
}

/* The try of sig:wait: read one signal and push its name; EAGAIN when
** none is pending, LSOCK_ECLOSED once closed. */
static int signals_try(lua_State *L, Op *op) {
  Signals *s = (Signals *)op->obj;
  struct signalfd_siginfo si;
  if (s->w.fd < 0) return LSOCK_ECLOSED;
  ssize_t n = read(s->w.fd, &si, sizeof si);
  if (n < 0) return errno;   /* the driver tries an interrupted read again */
  if (n != (ssize_t)sizeof si) return EIO;   /* the kernel hands out whole records */
  lua_pushstring(L, signal_name((int)si.ssi_signo));
  return 0;
}

/* A timeout of 0 with no signal pending is a timeout too. */
static int signals_push(lua_State *L, Op *op, int err, int nres) {
  return wait_pushresults(L, op, err == EAGAIN ? LSOCK_ETIMEOUT : err, nres);
}

/* sig:wait([timeout]) -> the name of a signal that came ("TERM"); nil,
** "timeout"; nil, "closed" when closed meanwhile. */
static int signals_wait(lua_State *L) {
  Signals *s = signals_check(L, 1);
  double timeout = aux_checktimeout(L, 2, 1, "timeout");
  if (s->w.fd < 0) return luaL_error(L, "attempt to use closed signals");
  lua_settop(L, 1);
  Op op;
  wait_opinit(&op, signals_try, signals_push, &s->w, WAIT_READ, timeout);
  op.obj = s;
  op.anchor[0] = 1;
  return wait_op(L, &op);
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

static const luaL_Reg signals_methods[] = {
  {"wait", signals_wait}, {"close", signals_closem}, {NULL, NULL}
};
static const luaL_Reg signals_meta[] = {
  {"__gc", signals_gc}, {"__close", signals_gc}, {"__tostring", signals_tostring},
  {"__index", NULL}, {NULL, NULL}
};
static const AuxClass signals_class = {SIGNALS_META, signals_meta, signals_methods, 0};

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
  sigemptyset(&s->held);
  for (int i = 1; i <= n; i++) sigaddset(&s->set, signal_check(L, i));
  aux_setclass(L, &signals_class);
  signals_hold(L, s);
  s->w.fd = signalfd(-1, &s->set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (s->w.fd < 0) {
    int err = errno;
    signals_release(L, s);
    return err_push(L, err);
  }
  return 1;
}

const luaL_Reg signals_funcs[] = {
  {"signals", lsock_signals},
  {NULL, NULL}
};

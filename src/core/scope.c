/*
** scope.c - deadline scopes: socket.timeout(seconds, fn, ...) gives every
** wait made while fn runs, at any depth, one deadline besides its own.
** The driver asks scope_deadline for the deadline a wait really ends at
** (the earlier of the call's and the scope's); nothing is unwound when
** the scope's deadline passes: the waiting call returns nil, "timeout",
** and later waits in fn time out at once.
**
** A scope belongs to the thread (task coroutine, or the main thread) that
** entered it: a registry table with weak keys maps the thread to its
** innermost scope, a Scope userdata that keeps the scope around it (user
** value 1).  socket.timeout calls fn with lua_pcallk and leaves the scope
** in the continuation, after a return and an error alike.  Its frame
** keeps nothing below fn and the continuation's state is the Scope, which
** the registry holds, so debug.setlocal on a task waiting in fn finds
** nothing of the scope to change.  A task closed or cancelled in fn never
** comes back to the continuation: its end shuts its thread's scopes
** (scope_endthread), so the count drops at once, not when the coroutine
** is collected; a Scope collected while open (a coroutine of the
** script's own, left in fn) gives back its count then (__gc).
** While no scope is open anywhere (Loop.nscopes), a wait costs one test.
**
** Left out: tasks spawned inside a scope do not inherit it (a group
** whose wait the scope ends cancels them as it is left).
*/
#include "loop_internal.h"
#include "base/aux.h"
#include "core/clock.h"
#include "core/loop.h"

static const char scopes_key = 0;   /* registry: thread -> its innermost Scope */

/* A scope: what a wait and the continuation need of it. */
typedef struct Scope {
  double deadline;    /* its own */
  double effective;   /* the earlier of its own and the enclosing scope's */
  Loop *loop;
  int open;
} Scope;

#define SCOPE_META "luasock.scope"

/* Push the scopes table (made on first use, with weak keys). */
static void scopes_push(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &scopes_key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &scopes_key);
}

/* Push the innermost scope of the thread at index thread (nil: none)
** and return it. */
static Scope *scope_pushinner(lua_State *L, int thread) {
  thread = lua_absindex(L, thread);
  scopes_push(L);
  lua_pushvalue(L, thread);
  lua_rawget(L, -2);
  lua_remove(L, -2);
  return (Scope *)lua_touserdata(L, -1);
}

/* Make the value on top (popped) the innermost scope of the thread at
** index thread. */
static void scope_setinner(lua_State *L, int thread) {
  thread = lua_absindex(L, thread);
  scopes_push(L);
  lua_pushvalue(L, thread);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

/* The deadline of L's innermost scope, or -1 (none). */
static double scope_get(lua_State *L) {
  Loop *loop = loop_of(L);
  if (loop == NULL || loop->nscopes == 0) return -1;
  luaL_checkstack(L, 4, "no room for a deadline scope");
  lua_pushthread(L);
  Scope *sc = scope_pushinner(L, -1);
  double d = sc != NULL ? sc->effective : -1;
  lua_pop(L, 2);
  return d;
}

double scope_deadline(lua_State *L, double deadline, int *cut) {
  double s = scope_get(L);
  *cut = s >= 0 && (deadline < 0 || s < deadline);
  return *cut ? s : deadline;
}

static void scope_shut(Scope *sc) {
  if (!sc->open) return;
  sc->open = 0;
  sc->loop->nscopes--;
}

/* __gc: a scope left neither by its continuation nor by its task's end
** (a coroutine of the script's own, never resumed past fn). */
static int scope_gc(lua_State *L) {
  scope_shut((Scope *)lua_touserdata(L, 1));
  return 0;
}

/* __tostring: whether it still counts as open, which only a look through
** debug.getregistry() can ask (the tests do). */
static int scope_tostring(lua_State *L) {
  Scope *sc = (Scope *)luaL_checkudata(L, 1, SCOPE_META);
  lua_pushfstring(L, "deadline scope (%s)", sc->open ? "open" : "shut");
  return 1;
}

static const luaL_Reg scope_meta[] = {
  {"__gc", scope_gc}, {"__tostring", scope_tostring}, {NULL, NULL}
};
static const AuxClass scope_class = {SCOPE_META, scope_meta, NULL, 0};

/* Leave sc, a scope of the thread at index thread: the scope around it
** becomes the innermost again.  Scopes inside sc still open (none, as
** each continuation leaves its own) are left with it; sc NULL leaves
** them all. */
static void scope_leave(lua_State *L, int thread, Scope *sc) {
  thread = lua_absindex(L, thread);
  luaL_checkstack(L, 4, "no room to leave a deadline scope");
  Scope *inner = scope_pushinner(L, thread);
  if (inner == NULL) {   /* a task's end, outside any scope */
    lua_pop(L, 1);
    return;
  }
  while (inner != NULL) {
    scope_shut(inner);
    lua_getiuservalue(L, -1, 1);
    lua_remove(L, -2);
    if (inner == sc) break;
    inner = (Scope *)lua_touserdata(L, -1);
  }
  scope_setinner(L, thread);
}

void scope_endthread(lua_State *L, Loop *loop, int thread) {
  if (loop->nscopes > 0) scope_leave(L, thread, NULL);
}

/* After fn, returned or failed (status): leave the scope, then fn's
** results, its error raised again, or nil, "timeout" once past the
** deadline (the scope ended fn's waits). */
static int timeout_k(lua_State *L, int status, lua_KContext ctx) {
  Scope *sc = (Scope *)ctx;
  double deadline = sc->deadline;
  luaL_checkstack(L, 1, "no room to leave a deadline scope");
  lua_pushthread(L);
  scope_leave(L, -1, sc);   /* sc may be collected from here on */
  lua_pop(L, 1);
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  if (clock_now() >= deadline) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  return lua_gettop(L);
}

/* socket.timeout(seconds, fn, ...) -> fn's results, or nil, "timeout"
** when the deadline passed while fn ran.  Scopes nest: a wait ends by the
** earliest deadline of the scopes it is in. */
static int lsock_timeout(lua_State *L) {
  double secs = aux_checktimeout(L, 1, 0, "timeout");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  Loop *loop = loop_get(L);
  double deadline = clock_now() + secs;
  luaL_checkstack(L, 5, "no room for a deadline scope");
  lua_pushthread(L);
  Scope *outer = scope_pushinner(L, -1);
  Scope *sc = (Scope *)lua_newuserdatauv(L, sizeof *sc, 1);
  sc->deadline = deadline;
  sc->effective = outer != NULL && outer->effective < deadline ? outer->effective : deadline;
  sc->loop = loop, sc->open = 0;
  aux_setclass(L, &scope_class);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);   /* the scope around it */
  scope_setinner(L, -2);
  sc->open = 1;
  loop->nscopes++;
  lua_pop(L, 1);                 /* the thread */
  lua_remove(L, 1);              /* fn args... */
  int status = lua_pcallk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, (lua_KContext)sc, timeout_k);
  return timeout_k(L, status, (lua_KContext)sc);
}

const luaL_Reg scope_funcs[] = {
  {"timeout", lsock_timeout},
  {NULL, NULL}
};

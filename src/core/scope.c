/*
** scope.c - deadline scopes: socket.timeout(seconds, fn, ...) gives every
** wait made while fn runs, at any depth, one deadline besides its own.
** The driver asks scope_deadline for the deadline a wait really ends at
** (the earlier of the call's and the scope's); nothing is unwound when
** the scope's deadline passes: the waiting call returns nil, "timeout",
** and later waits in fn time out at once.
**
** A scope belongs to the thread (task coroutine, or the main thread) that
** entered it: its deadline is kept in a registry table keyed by that
** thread, set on entry and put back as it was by a to-be-closed guard, so
** an error, a return or a cancel of the task leaves the scope alike.
** While no scope is open anywhere (Loop.nscopes), a wait costs one test.
**
** Left out: tasks spawned inside a scope do not inherit it (a group
** whose wait the scope ends cancels them as it is left).
*/
#include "loop_internal.h"
#include "base/aux.h"
#include "core/clock.h"
#include "core/loop.h"

static const char scopes_key = 0;   /* registry: thread -> its scope's deadline */

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

/* The deadline of L's innermost scope, or -1 (none). */
static double scope_get(lua_State *L) {
  Loop *loop = loop_of(L);
  if (loop == NULL || loop->nscopes == 0) return -1;
  luaL_checkstack(L, 3, "no room for a deadline scope");
  scopes_push(L);
  lua_pushthread(L);
  lua_rawget(L, -2);
  double d = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : -1;
  lua_pop(L, 2);
  return d;
}

/* Set (d >= 0) or clear (d < 0) the scope deadline of L's thread. */
static void scope_set(lua_State *L, double d) {
  scopes_push(L);
  lua_pushthread(L);
  if (d >= 0) lua_pushnumber(L, d);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

double scope_deadline(lua_State *L, double deadline, int *cut) {
  double s = scope_get(L);
  *cut = s >= 0 && (deadline < 0 || s < deadline);
  return *cut ? s : deadline;
}

/* The guard under fn: the deadline to put back when the scope is left. */
typedef struct Scope {
  double previous;   /* < 0: none */
  Loop *loop;
  int open;
} Scope;

#define SCOPE_META "luasock.scope"

/* __close of the guard: leave the scope (return, error or cancel). */
static int scope_close(lua_State *L) {
  Scope *sc = (Scope *)luaL_checkudata(L, 1, SCOPE_META);
  if (!sc->open) return 0;
  sc->open = 0;
  sc->loop->nscopes--;
  scope_set(L, sc->previous);
  return 0;
}

static const luaL_Reg scope_meta[] = {{"__close", scope_close}, {NULL, NULL}};
static const AuxClass scope_class = {SCOPE_META, scope_meta, NULL, 0};

/* After fn: slot 1 the deadline, 2 the guard, 3... fn's results.  Past
** the deadline the scope ended fn's waits: nil, "timeout". */
static int timeout_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  double deadline = lua_tonumber(L, 1);
  if (clock_now() >= deadline) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  return lua_gettop(L) - 2;
}

/* socket.timeout(seconds, fn, ...) -> fn's results, or nil, "timeout"
** when the deadline passed while fn ran.  Scopes nest: a wait ends by the
** earliest deadline of the scopes it is in. */
static int lsock_timeout(lua_State *L) {
  double secs = aux_checktimeout(L, 1, 0, "timeout");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  Loop *loop = loop_get(L);
  double deadline = clock_now() + secs;
  double previous = scope_get(L);
  Scope *sc = (Scope *)lua_newuserdatauv(L, sizeof *sc, 0);
  sc->previous = previous, sc->loop = loop, sc->open = 0;
  aux_setclass(L, &scope_class);
  lua_replace(L, 1);                  /* guard fn args... */
  lua_pushnumber(L, deadline);
  lua_insert(L, 1);                   /* deadline guard fn args... */
  lua_toclose(L, 2);
  scope_set(L, previous >= 0 && previous < deadline ? previous : deadline);
  sc->open = 1;
  loop->nscopes++;
  lua_callk(L, lua_gettop(L) - 3, LUA_MULTRET, 0, timeout_k);
  return timeout_k(L, LUA_OK, 0);
}

const luaL_Reg scope_funcs[] = {
  {"timeout", lsock_timeout},
  {NULL, NULL}
};

/*
** socket.c - the socket object and the module table.
**
** Creating, closing and collecting sockets; the metatable (__index,
** __gc, __close, __tostring); luaopen_socket, which gathers the function
** tables of the other files.  Waiting I/O lives in sockio.c.
*/
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "lsock.h"

/* Registry key of the default timeout (a number, < 0 for none). */
#define DEFAULT_TIMEOUT_KEY "luasock.defaulttimeout"

LSocket *sock_check(lua_State *L, int idx) {
  return (LSocket *)luaL_checkudata(L, idx, LSOCK_SOCKET);
}

LSocket *sock_checkopen(lua_State *L, int idx) {
  LSocket *s = sock_check(L, idx);
  if (s->w.fd < 0) luaL_error(L, "attempt to use a closed socket");
  return s;
}

double sock_defaulttimeout(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_TIMEOUT_KEY);
  double t = luaL_optnumber(L, -1, -1);
  lua_pop(L, 1);
  return t;
}

LSocket *sock_push(lua_State *L, int family, int type, int proto) {
  LSocket *s = (LSocket *)lua_newuserdatauv(L, sizeof(LSocket), 0);
  memset(s, 0, sizeof *s);
  s->w.fd = -1;
  s->family = family;
  s->type = type;
  s->proto = proto;
  s->timeout = sock_defaulttimeout(L);
  luaL_setmetatable(L, LSOCK_SOCKET);
  return s;
}

/* The idempotent core of close(), __close and __gc; never raises. */
void sock_closefd(LSocket *s, int wake) {
  if (s->w.fd < 0) return;
  loop_unwatch(&s->w, wake);
  close(s->w.fd);   /* on Linux the fd is released even on EINTR */
  s->w.fd = -1;
}

/* socket.socket([family [, type [, proto]]]) */
static int lsock_socket(lua_State *L) {
  int family = (int)luaL_optinteger(L, 1, AF_INET);
  int type = (int)luaL_optinteger(L, 2, SOCK_STREAM);
  int proto = (int)luaL_optinteger(L, 3, 0);
  LSocket *s = sock_push(L, family, type, proto);
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) return err_push(L, errno);
  s->w.fd = fd;
  return 1;
}

/* A timeout argument: nil (blocking, -1) or a non-negative number. */
static double check_timeout(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return -1;
  double t = luaL_checknumber(L, idx);
  luaL_argcheck(L, t >= 0, idx, "timeout must be non-negative");  /* NaN too */
  return t;
}

/* sock:settimeout(t): nil blocking, 0 non-blocking, > 0 seconds.  The fd
** stays O_NONBLOCK whatever the timeout: waiting is done by wait_fd. */
static int sock_settimeout(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  s->timeout = check_timeout(L, 2);
  lua_pushboolean(L, 1);
  return 1;
}

static int sock_gettimeout(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  if (s->timeout < 0) lua_pushnil(L);
  else lua_pushnumber(L, s->timeout);
  return 1;
}

/* sock:setblocking(flag): true is settimeout(nil), false settimeout(0). */
static int sock_setblocking(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  s->timeout = lua_toboolean(L, 2) ? -1 : 0;
  lua_pushboolean(L, 1);
  return 1;
}

/* An int argument that must fit a C int (levels, options, flags). */
static int check_int(lua_State *L, int idx) {
  lua_Integer v = luaL_checkinteger(L, idx);
  luaL_argcheck(L, v >= INT_MIN && v <= INT_MAX, idx, "integer out of range");
  return (int)v;
}

/* sock:setsockopt(level, option, value): value is an integer or a
** boolean (passed as a C int) or a string of raw bytes (string.pack). */
static int sock_setsockopt(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  int level = check_int(L, 2), opt = check_int(L, 3), iv = 0;
  const void *val = &iv;
  size_t len = sizeof iv;
  switch (lua_type(L, 4)) {
    case LUA_TBOOLEAN: iv = lua_toboolean(L, 4); break;
    case LUA_TNUMBER: iv = check_int(L, 4); break;
    case LUA_TSTRING: val = lua_tolstring(L, 4, &len); break;
    default: return luaL_typeerror(L, 4, "integer, boolean or string");
  }
  if (setsockopt(s->w.fd, level, opt, val, (socklen_t)len) < 0)
    return err_push(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* sock:getsockopt(level, option [, buflen]): an integer, or with buflen
** (1..1024, as Python) the raw bytes the kernel wrote. */
static int sock_getsockopt(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  int level = check_int(L, 2), opt = check_int(L, 3);
  if (lua_isnoneornil(L, 4)) {
    int iv = 0;
    socklen_t len = sizeof iv;
    if (getsockopt(s->w.fd, level, opt, &iv, &len) < 0) return err_push(L, errno);
    lua_pushinteger(L, iv);
    return 1;
  }
  lua_Integer buflen = luaL_checkinteger(L, 4);
  luaL_argcheck(L, buflen > 0 && buflen <= 1024, 4, "buflen out of range (1..1024)");
  char buf[1024];
  socklen_t len = (socklen_t)buflen;
  if (getsockopt(s->w.fd, level, opt, buf, &len) < 0) return err_push(L, errno);
  lua_pushlstring(L, buf, len);
  return 1;
}

/* sock:shutdown(how): how is SHUT_RD, SHUT_WR or SHUT_RDWR. */
static int sock_shutdown(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  lua_Integer how = luaL_checkinteger(L, 2);
  luaL_argcheck(L, how == SHUT_RD || how == SHUT_WR || how == SHUT_RDWR, 2,
                "invalid shutdown mode (SHUT_RD, SHUT_WR or SHUT_RDWR)");
  if (shutdown(s->w.fd, (int)how) < 0) return err_push(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* socket.socketpair([family [, type [, proto]]]): two connected sockets,
** AF_UNIX SOCK_STREAM by default.  Both userdata exist before the fds. */
static int lsock_socketpair(lua_State *L) {
  int family = (int)luaL_optinteger(L, 1, AF_UNIX);
  int type = (int)luaL_optinteger(L, 2, SOCK_STREAM);
  int proto = (int)luaL_optinteger(L, 3, 0);
  int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), fds[2];
  LSocket *a = sock_push(L, family, base, proto);
  LSocket *b = sock_push(L, family, base, proto);
  if (socketpair(family, base | SOCK_NONBLOCK | SOCK_CLOEXEC, proto, fds) < 0)
    return err_push(L, errno);
  a->w.fd = fds[0];
  b->w.fd = fds[1];
  return 2;
}

/* socket.gettime(): monotonic seconds, the clock of every deadline. */
static int lsock_gettime(lua_State *L) {
  lua_pushnumber(L, wait_now());
  return 1;
}

/* Continuation of socket.sleep: the deadline is at stack index 2.  A
** timer that fires early (or an interrupted poll) waits again. */
static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  int err = wait_resumed(L, status);
  double deadline = lua_tonumber(L, 2);
  while (err == 0 || err == LSOCK_ETIMEOUT) {
    if (wait_now() >= deadline) {
      lua_pushboolean(L, 1);
      return 1;
    }
    err = wait_until(L, deadline, ctx, sleep_k);
  }
  return err_push(L, err);
}

/* socket.sleep(seconds): inside a task the others run meanwhile; always
** goes through the wait point once, so sleep(0) yields to other tasks. */
static int lsock_sleep(lua_State *L) {
  double t = luaL_checknumber(L, 1);
  luaL_argcheck(L, t >= 0, 1, "sleep length must be non-negative");
  lua_settop(L, 1);
  lua_pushnumber(L, wait_now() + t);   /* index 2: the deadline */
  int err = wait_until(L, lua_tonumber(L, 2), 0, sleep_k);
  if (err != 0 && err != LSOCK_ETIMEOUT) return err_push(L, err);
  return sleep_k(L, LUA_OK, 0);
}

static int sock_close(lua_State *L) {
  sock_closefd(sock_check(L, 1), 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int sock_gc(lua_State *L) {
  sock_closefd(sock_check(L, 1), 0);
  return 0;
}

static int sock_fileno(lua_State *L) {
  lua_pushinteger(L, sock_check(L, 1)->w.fd);
  return 1;
}

static int sock_tostring(lua_State *L) {
  LSocket *s = sock_check(L, 1);
  if (s->w.fd < 0) lua_pushliteral(L, "socket (closed)");
  else lua_pushfstring(L, "socket (fd %d, family %d, type %d)", s->w.fd, s->family, s->type);
  return 1;
}

/* __index: methods first, then the read-only fields family, type, proto. */
static int sock_index(lua_State *L) {
  LSocket *s = sock_check(L, 1);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  const char *k = lua_tostring(L, 2);
  if (k == NULL) return 0;
  if (strcmp(k, "family") == 0) lua_pushinteger(L, s->family);
  else if (strcmp(k, "type") == 0) lua_pushinteger(L, s->type);
  else if (strcmp(k, "proto") == 0) lua_pushinteger(L, s->proto);
  else lua_pushnil(L);
  return 1;
}

static int lsock_getdefaulttimeout(lua_State *L) {
  double t = sock_defaulttimeout(L);
  if (t < 0) lua_pushnil(L);
  else lua_pushnumber(L, t);
  return 1;
}

static int lsock_setdefaulttimeout(lua_State *L) {
  double t = luaL_optnumber(L, 1, -1);
  luaL_argcheck(L, lua_isnoneornil(L, 1) || t >= 0, 1, "timeout must be non-negative");
  lua_pushnumber(L, t);
  lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_TIMEOUT_KEY);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg sock_methods[] = {
  {"close", sock_close},
  {"fileno", sock_fileno},
  {"settimeout", sock_settimeout},
  {"gettimeout", sock_gettimeout},
  {"setblocking", sock_setblocking},
  {"setsockopt", sock_setsockopt},
  {"getsockopt", sock_getsockopt},
  {"shutdown", sock_shutdown},
  {NULL, NULL}
};

static const luaL_Reg sock_metamethods[] = {
  {"__gc", sock_gc},
  {"__close", sock_gc},
  {"__tostring", sock_tostring},
  {NULL, NULL}
};

static const luaL_Reg lsock_funcs[] = {
  {"socket", lsock_socket},
  {"socketpair", lsock_socketpair},
  {"gettime", lsock_gettime},
  {"sleep", lsock_sleep},
  {"getdefaulttimeout", lsock_getdefaulttimeout},
  {"setdefaulttimeout", lsock_setdefaulttimeout},
  {NULL, NULL}
};

static void set_constants(lua_State *L) {
#define C(name) (lua_pushinteger(L, name), lua_setfield(L, -2, #name))
  C(AF_UNIX); C(AF_INET); C(AF_INET6); C(AF_UNSPEC);
  C(SOCK_STREAM); C(SOCK_DGRAM); C(SOCK_RAW); C(SOCK_SEQPACKET);
  C(SOL_SOCKET); C(SO_REUSEADDR); C(SO_REUSEPORT); C(SO_KEEPALIVE);
  C(SO_BROADCAST); C(SO_RCVBUF); C(SO_SNDBUF); C(SO_LINGER); C(SO_ERROR);
  C(SO_TYPE); C(SO_RCVTIMEO); C(SO_SNDTIMEO);
  C(SHUT_RD); C(SHUT_WR); C(SHUT_RDWR);
#undef C
}

/* The metatable: methods of every file in one table, used by __index. */
static void create_meta(lua_State *L) {
  luaL_newmetatable(L, LSOCK_SOCKET);
  luaL_setfuncs(L, sock_metamethods, 0);
  lua_newtable(L);
  luaL_setfuncs(L, sock_methods, 0);
  luaL_setfuncs(L, sockio_methods, 0);
  luaL_setfuncs(L, msg_methods, 0);
  luaL_setfuncs(L, stream_methods, 0);
  lua_pushcclosure(L, sock_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

int luaopen_socket(lua_State *L) {
  create_meta(L);
  stream_open(L);
  loop_open(L);
  luaL_newlib(L, lsock_funcs);
  luaL_setfuncs(L, addr_funcs, 0);
  luaL_setfuncs(L, msg_funcs, 0);
  luaL_setfuncs(L, select_funcs, 0);
  luaL_setfuncs(L, loop_funcs, 0);
  set_constants(L);
  err_pusherrnotable(L);
  lua_setfield(L, -2, "errno");
  /* Functions written in Lua (lua/luasock/util.lua) add themselves. */
  lsock_loadmodule(L, "luasock.util");
  lua_pushvalue(L, -2);
  lua_call(L, 1, 0);
  return 1;
}

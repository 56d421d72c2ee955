/*
** socket.c - the socket object and the module table.
**
** Creating, closing and collecting sockets; the metatable (__index,
** __gc, __close, __tostring); luaopen_socket, which gathers the function
** tables of the other files.  Waiting I/O lives in sockio.c.
*/
#include <errno.h>
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
  {"getdefaulttimeout", lsock_getdefaulttimeout},
  {"setdefaulttimeout", lsock_setdefaulttimeout},
  {NULL, NULL}
};

static void set_constants(lua_State *L) {
#define C(name) (lua_pushinteger(L, name), lua_setfield(L, -2, #name))
  C(AF_UNIX); C(AF_INET); C(AF_INET6); C(AF_UNSPEC);
  C(SOCK_STREAM); C(SOCK_DGRAM); C(SOCK_RAW); C(SOCK_SEQPACKET);
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

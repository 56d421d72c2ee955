/*
** errors.c - the one place where a C error int becomes Lua values.
**
** Failures of the OS or the network follow Lua's io library: nil, the
** system's message, and the errno.  Two messages are fixed words that
** scripts test for: "timeout" (ETIMEDOUT) and "closed" (EBADF).
** Resolver failures carry gai_strerror's text and the EAI code.
*/
#include <errno.h>
#include <netdb.h>
#include <string.h>

#include "lsock.h"

const char *err_message(int err) {
  if (err == LSOCK_ETIMEOUT) return "timeout";
  if (err == LSOCK_ECLOSED) return "closed";
  return strerror(err);
}

int err_push(lua_State *L, int err) {
  int code = err == LSOCK_ETIMEOUT ? ETIMEDOUT : err == LSOCK_ECLOSED ? EBADF : err;
  luaL_pushfail(L);
  lua_pushstring(L, err_message(err));
  lua_pushinteger(L, code);
  return 3;
}

/* EAI_SYSTEM means the real cause is in errno. */
int err_pushgai(lua_State *L, int code) {
  if (code == EAI_SYSTEM) return err_push(L, errno);
  luaL_pushfail(L);
  lua_pushstring(L, gai_strerror(code));
  lua_pushinteger(L, code);
  return 3;
}

#define E(name) { #name, name }
static const struct { const char *name; int value; } errno_names[] = {
  E(EPERM), E(ENOENT), E(EINTR), E(EIO), E(EBADF), E(EAGAIN), E(EWOULDBLOCK),
  E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY), E(EEXIST), E(ENOTDIR),
  E(EISDIR), E(EINVAL), E(ENFILE), E(EMFILE), E(ENOSPC), E(EPIPE),
  E(ENAMETOOLONG), E(ENOSYS), E(ENOTSOCK), E(EDESTADDRREQ), E(EMSGSIZE),
  E(EPROTOTYPE), E(ENOPROTOOPT), E(EPROTONOSUPPORT), E(ESOCKTNOSUPPORT),
  E(EOPNOTSUPP), E(EPFNOSUPPORT), E(EAFNOSUPPORT), E(EADDRINUSE),
  E(EADDRNOTAVAIL), E(ENETDOWN), E(ENETUNREACH), E(ENETRESET),
  E(ECONNABORTED), E(ECONNRESET), E(ENOBUFS), E(EISCONN), E(ENOTCONN),
  E(ESHUTDOWN), E(ETIMEDOUT), E(ECONNREFUSED), E(EHOSTDOWN),
  E(EHOSTUNREACH), E(EALREADY), E(EINPROGRESS), E(ENOTSUP), E(ENODATA),
};
#undef E

void err_pusherrnotable(lua_State *L) {
  size_t n = sizeof errno_names / sizeof errno_names[0];
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n; i++) {
    lua_pushinteger(L, errno_names[i].value);
    lua_setfield(L, -2, errno_names[i].name);
  }
}

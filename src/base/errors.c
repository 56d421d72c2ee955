/*
** errors.c - the one place where a C error int becomes Lua values.
**
** Failures of the OS or the network follow Lua's io library: nil, the
** system's message, and the errno.  Two messages are fixed words that
** scripts test for: "timeout" (ETIMEDOUT), "closed" (EBADF) and "line too
** long" (EMSGSIZE).
** Resolver failures carry gai_strerror's text and the EAI code.
*/
#include <errno.h>
#include <netdb.h>
#include <string.h>

#include "base/errors.h"

const char *err_message(int err) {
  if (err == LSOCK_ETIMEOUT) return "timeout";
  if (err == LSOCK_ETLS) return "TLS failure";
  if (err == LSOCK_ECLOSED) return "closed";
  if (err == LSOCK_ETOOLONG) return "line too long";
  return strerror(err);
}

/* A TLS failure's message and code, as the TLS layer left them. */
static int push_tlserr(lua_State *L) {
  luaL_pushfail(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LSOCK_TLSERR_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_pushstring(L, err_message(LSOCK_ETLS));
    lua_pushliteral(L, "UNKNOWN");
    return 3;
  }
  lua_rawgeti(L, -1, 1);
  lua_rawgeti(L, -2, 2);
  lua_remove(L, -3);
  return 3;
}

int err_push(lua_State *L, int err) {
  if (err == LSOCK_ETLS) return push_tlserr(L);
  int code = err == LSOCK_ETIMEOUT ? ETIMEDOUT : err == LSOCK_ECLOSED ? EBADF
           : err == LSOCK_ETOOLONG ? EMSGSIZE : err;
  luaL_pushfail(L);
  lua_pushstring(L, err_message(err));
  lua_pushinteger(L, code);
  return 3;
}

/* EAI_SYSTEM means the real cause is in errno: the caller saves errno
** right after the resolver returns (maybe on a helper thread) and passes
** it here, the one place that reads it. */
int err_pushgai(lua_State *L, int code, int saved_errno) {
  if (code == EAI_SYSTEM) return err_push(L, saved_errno);
  luaL_pushfail(L);
  lua_pushstring(L, gai_strerror(code));
  lua_pushinteger(L, code);
  return 3;
}

/* The "true, or nil, message, errno" of calls that return nothing else
** (as luaL_fileresult). */
int err_pushresult(lua_State *L, int err) {
  if (err != 0) return err_push(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

#define E(name) { #name, name }
/* Every errno name of the system headers, so that any failure the module
** passes on has its name in socket.errno (Linux's list, sorted). */
static const struct { const char *name; int value; } errno_names[] = {
  E(E2BIG), E(EACCES), E(EADDRINUSE), E(EADDRNOTAVAIL), E(EADV),
  E(EAFNOSUPPORT), E(EAGAIN), E(EALREADY), E(EBADE), E(EBADF), E(EBADFD),
  E(EBADMSG), E(EBADR), E(EBADRQC), E(EBADSLT), E(EBFONT), E(EBUSY),
  E(ECANCELED), E(ECHILD), E(ECHRNG), E(ECOMM), E(ECONNABORTED),
  E(ECONNREFUSED), E(ECONNRESET), E(EDEADLK), E(EDEADLOCK), E(EDESTADDRREQ),
  E(EDOM), E(EDOTDOT), E(EDQUOT), E(EEXIST), E(EFAULT), E(EFBIG),
  E(EHOSTDOWN), E(EHOSTUNREACH), E(EHWPOISON), E(EIDRM), E(EILSEQ),
  E(EINPROGRESS), E(EINTR), E(EINVAL), E(EIO), E(EISCONN), E(EISDIR),
  E(EISNAM), E(EKEYEXPIRED), E(EKEYREJECTED), E(EKEYREVOKED), E(EL2HLT),
  E(EL2NSYNC), E(EL3HLT), E(EL3RST), E(ELIBACC), E(ELIBBAD), E(ELIBEXEC),
  E(ELIBMAX), E(ELIBSCN), E(ELNRNG), E(ELOOP), E(EMEDIUMTYPE), E(EMFILE),
  E(EMLINK), E(EMSGSIZE), E(EMULTIHOP), E(ENAMETOOLONG), E(ENAVAIL),
  E(ENETDOWN), E(ENETRESET), E(ENETUNREACH), E(ENFILE), E(ENOANO),
  E(ENOBUFS), E(ENOCSI), E(ENODATA), E(ENODEV), E(ENOENT), E(ENOEXEC),
  E(ENOKEY), E(ENOLCK), E(ENOLINK), E(ENOMEDIUM), E(ENOMEM), E(ENOMSG),
  E(ENONET), E(ENOPKG), E(ENOPROTOOPT), E(ENOSPC), E(ENOSR), E(ENOSTR),
  E(ENOSYS), E(ENOTBLK), E(ENOTCONN), E(ENOTDIR), E(ENOTEMPTY), E(ENOTNAM),
  E(ENOTRECOVERABLE), E(ENOTSOCK), E(ENOTSUP), E(ENOTTY), E(ENOTUNIQ),
  E(ENXIO), E(EOPNOTSUPP), E(EOVERFLOW), E(EOWNERDEAD), E(EPERM),
  E(EPFNOSUPPORT), E(EPIPE), E(EPROTO), E(EPROTONOSUPPORT), E(EPROTOTYPE),
  E(ERANGE), E(EREMCHG), E(EREMOTE), E(EREMOTEIO), E(ERESTART), E(ERFKILL),
  E(EROFS), E(ESHUTDOWN), E(ESOCKTNOSUPPORT), E(ESPIPE), E(ESRCH), E(ESRMNT),
  E(ESTALE), E(ESTRPIPE), E(ETIME), E(ETIMEDOUT), E(ETOOMANYREFS),
  E(ETXTBSY), E(EUCLEAN), E(EUNATCH), E(EUSERS), E(EWOULDBLOCK), E(EXDEV),
  E(EXFULL),
  /* resolver failures return these in the errno position (negative) */
  E(EAI_ADDRFAMILY), E(EAI_AGAIN), E(EAI_BADFLAGS), E(EAI_FAIL), E(EAI_FAMILY),
  E(EAI_MEMORY), E(EAI_NODATA), E(EAI_NONAME), E(EAI_OVERFLOW), E(EAI_SERVICE),
  E(EAI_SOCKTYPE), E(EAI_SYSTEM),
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

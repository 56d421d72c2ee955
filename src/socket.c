/*
** socket.c - the socket object and the module table.
**
** Creating (socket, socketpair, fromfd, dup), closing and collecting
** sockets; the metatable (__index, __newindex, __gc, __close,
** __tostring); timeouts, socket options, shutdown; the constants;
** gettime and sleep; luaopen_socket, which gathers the function tables
** of the other files.  Waiting I/O lives in sockio.c and msg.c.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "lualib.h"

#include "base/errors.h"
#include "addr.h"
#include "luasock.h"
#include "base/aux.h"
#include "core/clock.h"
#include "core/loop.h"
#include "core/wait.h"
#include "socket.h"
#include "lib.h"

/* Registry key of the default timeout (a number, < 0 for none). */
#define DEFAULT_TIMEOUT_KEY "luasock.defaulttimeout"

/* The registry's table of socket metatables by kind (weak values). */
#define KINDS_KEY "luasock.socket.kinds"

/* A socket is a userdata of our size whose metatable is the one recorded
** in it at creation: a few API calls, where a marker looked up in the
** metatable cost a hash lookup on every method call.  A TLS socket is a
** larger block that begins with an LSocket.  Another library's userdata
** would need at least our size and its own metatable's address at our
** offset; debug.setmetatable cannot pass one off as a socket. */
LSocket *sock_test(lua_State *L, int idx) {
  LSocket *s = (LSocket *)lua_touserdata(L, idx);   /* light userdata: length 0 */
  if (s == NULL || lua_rawlen(L, idx) < sizeof(LSocket) || !lua_getmetatable(L, idx))
    return NULL;
  const void *meta = lua_topointer(L, -1);
  lua_pop(L, 1);
  return meta == s->meta ? s : NULL;
}

LSocket *sock_check(lua_State *L, int idx) {
  LSocket *s = sock_test(L, idx);
  if (s == NULL) luaL_typeerror(L, idx, LSOCK_SOCKET);
  return s;
}

LSocket *sock_checkopen(lua_State *L, int idx) {
  LSocket *s = sock_check(L, idx);
  if (s->w.fd < 0) luaL_error(L, "attempt to use a closed socket");
  return s;
}

/* The timeout new sockets get (< 0: none), kept in the registry. */
static double sock_defaulttimeout(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_TIMEOUT_KEY);
  double t = luaL_optnumber(L, -1, -1);
  lua_pop(L, 1);
  return t;
}



/* Make the metatable of sockets of one kind: the metamethods of the
** template (registry LSOCK_SOCKET), and an __index table holding its
** methods plus the read-only fields family, type and proto.  A method
** call is then one table lookup, where an __index function cost a call
** per method (15 % of the echo benchmark's instructions). */
static void new_kindmeta(lua_State *L, int family, int type, int proto) {
  sock_pushtemplate(L);
  int base = lua_gettop(L);
  lua_getfield(L, base, "__index");     /* base + 1: the methods */
  lua_newtable(L);                      /* base + 2: the new metatable */
  aux_copyfields(L, base);
  lua_newtable(L);                      /* its __index */
  aux_copyfields(L, base + 1);
  lua_pushinteger(L, family);
  lua_setfield(L, -2, "family");
  lua_pushinteger(L, type);
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, proto);
  lua_setfield(L, -2, "proto");
  lua_setfield(L, -2, "__index");
  lua_replace(L, base);
  lua_settop(L, base);
}

/* Push the metatable of sockets of this kind, made on first use.  The
** cache holds it weakly: kinds that no socket has any more (a script
** trying socket() with many bad families) do not pile up. */
static void push_kindmeta(lua_State *L, int family, int type, int proto) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, KINDS_KEY) == LUA_TNIL) {   /* the first socket */
    lua_pop(L, 1);
    aux_pushweak(L, "v");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, KINDS_KEY);
  }
  lua_pushfstring(L, "%d %d %d", family, type, proto);
  if (lua_rawget(L, -2) == LUA_TNIL) {
    lua_pop(L, 1);
    new_kindmeta(L, family, type, proto);
    lua_pushfstring(L, "%d %d %d", family, type, proto);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_remove(L, -2);
}

/* The readiness hint's start (core/wait.h): on for TCP streams only, the
** one kind whose short read proves it drained. */
static unsigned char hint_for(int family, int type, int proto) {
  int inet = family == AF_INET || family == AF_INET6;
  return inet && type == SOCK_STREAM && (proto == 0 || proto == IPPROTO_TCP) ? HINT_TCP : 0;
}

LSocket *sock_push(lua_State *L, int family, int type, int proto) {
  LSocket *s = (LSocket *)lua_newuserdatauv(L, sizeof(LSocket), 0);
  memset(s, 0, sizeof *s);
  s->w.fd = -1;
  s->w.hint = hint_for(family, type, proto);
  s->family = family;
  s->type = type;
  s->proto = proto;
  s->timeout = sock_defaulttimeout(L);
  push_kindmeta(L, family, type, proto);
  s->meta = lua_topointer(L, -1);
  lua_setmetatable(L, -2);
  return s;
}

/* The idempotent core of close(), __close and __gc; never raises. */
static void sock_closefd(lua_State *L, LSocket *s) {
  loop_closewatch(L, &s->w);
}

/* Constants with the values of the headers we are built with.  Values
** are lua_Integer so that the unsigned INADDR_* keep their value. */
#define C(name) { #name, (lua_Integer)(name) }
static const struct { const char *name; lua_Integer value; } constants[] = {
  C(AF_UNIX), C(AF_INET), C(AF_INET6), C(AF_UNSPEC), C(AF_PACKET), C(AF_NETLINK),
  C(SOCK_STREAM), C(SOCK_DGRAM), C(SOCK_RAW), C(SOCK_SEQPACKET), C(SOCK_RDM),
  C(SOCK_NONBLOCK), C(SOCK_CLOEXEC), C(SOMAXCONN),
  C(IPPROTO_IP), C(IPPROTO_IPV6), C(IPPROTO_TCP), C(IPPROTO_UDP),
  C(IPPROTO_ICMP), C(IPPROTO_ICMPV6), C(IPPROTO_RAW), C(IPPROTO_SCTP),
  C(IPPROTO_UDPLITE),
  C(SOL_SOCKET), C(SO_REUSEADDR), C(SO_REUSEPORT), C(SO_KEEPALIVE),
  C(SO_BROADCAST), C(SO_RCVBUF), C(SO_SNDBUF), C(SO_LINGER), C(SO_ERROR),
  C(SO_TYPE), C(SO_RCVTIMEO), C(SO_SNDTIMEO), C(SO_RCVLOWAT), C(SO_SNDLOWAT),
  C(SO_ACCEPTCONN), C(SO_DOMAIN), C(SO_PROTOCOL), C(SO_OOBINLINE),
  C(SO_DEBUG), C(SO_DONTROUTE), C(SO_PASSCRED), C(SO_PEERCRED),
  C(SO_BINDTODEVICE), C(SO_PRIORITY), C(SO_MARK), C(SO_TIMESTAMP),
  C(SO_INCOMING_CPU), C(SO_RCVBUFFORCE), C(SO_SNDBUFFORCE), C(SO_PEERSEC),
  C(SO_PASSSEC), C(SO_ZEROCOPY), C(SO_BUSY_POLL),
  C(TCP_NODELAY), C(TCP_MAXSEG), C(TCP_CORK), C(TCP_KEEPIDLE),
  C(TCP_KEEPINTVL), C(TCP_KEEPCNT), C(TCP_SYNCNT), C(TCP_LINGER2),
  C(TCP_DEFER_ACCEPT), C(TCP_WINDOW_CLAMP), C(TCP_INFO), C(TCP_QUICKACK),
  C(TCP_CONGESTION), C(TCP_USER_TIMEOUT), C(TCP_FASTOPEN),
  C(TCP_NOTSENT_LOWAT),
  C(IP_TOS), C(IP_TTL), C(IP_HDRINCL), C(IP_OPTIONS), C(IP_RECVOPTS),
  C(IP_RETOPTS), C(IP_PKTINFO), C(IP_RECVTTL), C(IP_RECVTOS), C(IP_RECVERR),
  C(IP_MTU_DISCOVER), C(IP_TRANSPARENT), C(IP_FREEBIND),
  C(IP_BIND_ADDRESS_NO_PORT), C(IP_MULTICAST_IF), C(IP_MULTICAST_TTL),
  C(IP_MULTICAST_LOOP), C(IP_MULTICAST_ALL), C(IP_ADD_MEMBERSHIP),
  C(IP_DROP_MEMBERSHIP),
  C(IPV6_V6ONLY), C(IPV6_UNICAST_HOPS), C(IPV6_MULTICAST_IF),
  C(IPV6_MULTICAST_HOPS), C(IPV6_MULTICAST_LOOP), C(IPV6_JOIN_GROUP),
  C(IPV6_LEAVE_GROUP), C(IPV6_RECVPKTINFO), C(IPV6_PKTINFO),
  C(IPV6_RECVHOPLIMIT), C(IPV6_HOPLIMIT), C(IPV6_TCLASS), C(IPV6_RECVTCLASS),
  C(IPV6_RECVERR), C(IPV6_CHECKSUM),
  C(MSG_OOB), C(MSG_PEEK), C(MSG_DONTROUTE), C(MSG_CTRUNC), C(MSG_TRUNC),
  C(MSG_DONTWAIT), C(MSG_EOR), C(MSG_WAITALL), C(MSG_NOSIGNAL),
  C(MSG_CMSG_CLOEXEC), C(MSG_ERRQUEUE), C(MSG_CONFIRM), C(MSG_MORE),
  C(MSG_FASTOPEN),
  C(SCM_RIGHTS), C(SCM_CREDENTIALS), C(SCM_TIMESTAMP),
  C(SHUT_RD), C(SHUT_WR), C(SHUT_RDWR),
  C(AI_PASSIVE), C(AI_CANONNAME), C(AI_NUMERICHOST), C(AI_NUMERICSERV),
  C(AI_V4MAPPED), C(AI_ALL), C(AI_ADDRCONFIG),
  C(NI_NUMERICHOST), C(NI_NUMERICSERV), C(NI_NOFQDN), C(NI_NAMEREQD),
  C(NI_DGRAM), C(NI_MAXHOST), C(NI_MAXSERV),
  C(EAI_AGAIN), C(EAI_BADFLAGS), C(EAI_FAIL), C(EAI_FAMILY), C(EAI_MEMORY),
  C(EAI_NONAME), C(EAI_SERVICE), C(EAI_SOCKTYPE), C(EAI_SYSTEM),
  C(EAI_OVERFLOW), C(EAI_NODATA), C(EAI_ADDRFAMILY),
  C(INADDR_ANY), C(INADDR_LOOPBACK), C(INADDR_BROADCAST), C(INADDR_NONE),
};
#undef C

/* Whether this machine can make an AF_INET6 socket (IPv6 may be compiled
** in but disabled at boot: then socket() says EAFNOSUPPORT). */
static int can_ipv6(void) {
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  close(fd);
  return 1;
}

static void set_constants(lua_State *L) {
  for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
    lua_pushinteger(L, constants[i].value);
    lua_setfield(L, -2, constants[i].name);
  }
  lua_pushboolean(L, can_ipv6());
  lua_setfield(L, -2, "has_ipv6");
}

/* sock:get_inheritable(): whether a program this process execs gets the
** descriptor (false by default: every fd is opened close-on-exec). */
static int sock_get_inheritable(lua_State *L) {
  int fl = fcntl(sock_checkopen(L, 1)->w.fd, F_GETFD);
  if (fl < 0) return err_push(L, errno);
  lua_pushboolean(L, !(fl & FD_CLOEXEC));
  return 1;
}

/* sock:set_inheritable(flag): let exec'd programs (os.execute, io.popen)
** have the descriptor, or not. */
static int sock_set_inheritable(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  int r = fcntl(s->w.fd, F_SETFD, lua_toboolean(L, 2) ? 0 : FD_CLOEXEC);
  return err_pushresult(L, r < 0 ? errno : 0);
}




void sock_opinit(Op *op, LSocket *s, int dir, int flags, OpTry try, OpPush push) {
  wait_opinit(op, try, push, &s->w, dir, (flags & MSG_DONTWAIT) ? 0 : s->timeout);
  op->flags = flags;
  op->anchor[0] = 1;
}

/* An int argument that must fit a C int (levels, options, flags). */
static int check_int(lua_State *L, int idx) {
  return (int)aux_checkint(L, idx, INT_MIN, INT_MAX);
}

static int opt_int(lua_State *L, int idx, int def) {
  return (int)aux_optint(L, idx, def, INT_MIN, INT_MAX);
}

/* Push a socket object for descriptor fd: the one given (taken over, as
** Python's socket(fileno=...)) or, with dup, a close-on-exec duplicate.
** family, type and proto at stack 1..3 default to what the kernel says
** (which also checks fd is a socket).  The fd is made non-blocking. */
static int socket_wrap(lua_State *L, int fd, int dup) {
  static const int opts[3] = { SO_DOMAIN, SO_TYPE, SO_PROTOCOL };
  int v[3], kernel[3];
  for (int i = 0; i < 3; i++) {
    socklen_t len = sizeof v[i];
    if (getsockopt(fd, SOL_SOCKET, opts[i], &v[i], &len) < 0) return err_push(L, errno);
    kernel[i] = v[i];
    if (!lua_isnoneornil(L, i + 1)) v[i] = check_int(L, i + 1);
  }
  LSocket *s = sock_push(L, v[0], v[1], v[2]);
  s->w.hint = hint_for(kernel[0], kernel[1], kernel[2]);   /* what it is, not what we are told */
  if (dup && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) return err_push(L, errno);
  int fl = fcntl(fd, F_GETFL);   /* waiting is ours: the fd must not block */
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    int err = errno;
    if (dup) close(fd);
    return err_push(L, err);
  }
  s->w.fd = fd;
  return 1;
}

static int check_fd(lua_State *L, int idx) {
  int fd = check_int(L, idx);
  luaL_argcheck(L, fd >= 0, idx, "negative file descriptor");
  return fd;
}

/* socket.fromfd(fd [, family [, type [, proto]]]): a socket on a
** duplicate of fd, as Python's (which requires family and type). */
static int lsock_fromfd(lua_State *L) {
  int fd = check_fd(L, 1);
  lua_settop(L, 4);
  lua_rotate(L, 1, -1);   /* family, type, proto at 1..3 */
  return socket_wrap(L, fd, 1);
}

/* sock:dup(): a new socket object on a duplicate descriptor, with the
** same timeout. */
static int sock_dup(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  LSocket *d = sock_push(L, s->family, s->type, s->proto);
  d->timeout = s->timeout;
  int fd = fcntl(s->w.fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return err_push(L, errno);
  d->w.fd = fd;
  return 1;
}

/* socket.socket([family [, type [, proto [, fileno]]]]).  SOCK_NONBLOCK
** and SOCK_CLOEXEC in type are accepted and dropped from s.type (the fd
** always has both); SOCK_NONBLOCK also sets the timeout to 0, as Python. */
static int lsock_socket(lua_State *L) {
  if (!lua_isnoneornil(L, 4)) return socket_wrap(L, check_fd(L, 4), 0);
  int family = opt_int(L, 1, AF_INET);
  int type = opt_int(L, 2, SOCK_STREAM);
  int proto = opt_int(L, 3, 0);
  LSocket *s = sock_push(L, family, type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), proto);
  if (type & SOCK_NONBLOCK) s->timeout = 0;
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) return err_push(L, errno);
  s->w.fd = fd;
  return 1;
}


/* sock:settimeout(t): nil blocking, 0 non-blocking, > 0 seconds.  The fd
** stays O_NONBLOCK whatever the timeout: the retry driver (core/wait.h)
** waits. */
static int sock_settimeout(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  s->timeout = aux_checktimeout(L, 2, 1, "timeout");
  lua_pushboolean(L, 1);
  return 1;
}

static int sock_gettimeout(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  if (s->timeout < 0) lua_pushnil(L);
  else lua_pushnumber(L, s->timeout);
  return 1;
}

/* sock:getblocking(): false when the timeout is 0, as Python. */
static int sock_getblocking(lua_State *L) {
  lua_pushboolean(L, sock_checkopen(L, 1)->timeout != 0);
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
  int r = setsockopt(s->w.fd, level, opt, val, (socklen_t)len);
  return err_pushresult(L, r < 0 ? errno : 0);
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
  return err_pushresult(L, shutdown(s->w.fd, (int)how) < 0 ? errno : 0);
}

/* socket.socketpair([family [, type [, proto]]]): two connected sockets,
** AF_UNIX SOCK_STREAM by default.  Both userdata exist before the fds. */
static int lsock_socketpair(lua_State *L) {
  int family = opt_int(L, 1, AF_UNIX);
  int type = opt_int(L, 2, SOCK_STREAM);
  int proto = opt_int(L, 3, 0);
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
  lua_pushnumber(L, clock_now());
  return 1;
}

/* socket.sleep's try: done once it has waited and the deadline passed
** (a timer that fires early waits again). */
static int sleep_try(lua_State *L, Op *op) {
  if (!op->done || clock_now() < op->deadline) {
    op->done = 1;
    return OP_WANTREAD;
  }
  lua_pushboolean(L, 1);
  return 0;
}

/* socket.sleep(seconds): inside a task the others run meanwhile; always
** waits once, so sleep(0) yields to other tasks. */
static int lsock_sleep(lua_State *L) {
  double t = aux_checktimeout(L, 1, 0, "sleep length");
  Op op;
  wait_opinit(&op, sleep_try, wait_pushresults, NULL, WAIT_READ, -1);
  op.deadline = clock_now() + t;   /* absolute now: sleep(0) must not be non-blocking */
  op.timeout = 0;
  return wait_op(L, &op);
}

static int sock_close(lua_State *L) {
  sock_closefd(L, sock_check(L, 1));
  lua_pushboolean(L, 1);
  return 1;
}

/* sock:detach(): the socket object becomes closed without closing its
** descriptor, which it returns (Python's detach); -1 if already closed. */
static int sock_detach(lua_State *L) {
  LSocket *s = sock_check(L, 1);
  int fd = s->w.fd;
  if (fd >= 0) loop_unwatch(L, &s->w);   /* its waiters see "closed" */
  s->w.fd = -1;
  lua_pushinteger(L, fd);
  return 1;
}

static int sock_gc(lua_State *L) {
  sock_closefd(L, sock_check(L, 1));
  return 0;
}

static int sock_fileno(lua_State *L) {
  lua_pushinteger(L, sock_check(L, 1)->w.fd);
  return 1;
}

/* The constant named prefix* (e.g. "AF_") whose value is v, or NULL. */
static const char *const_name(lua_Integer v, const char *prefix) {
  size_t n = strlen(prefix);
  for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
    if (constants[i].value == v && strncmp(constants[i].name, prefix, n) == 0)
      return constants[i].name;
  return NULL;
}

/* Push the name of v, or its number when it has none. */
static void push_const(lua_State *L, lua_Integer v, const char *prefix) {
  const char *name = const_name(v, prefix);
  if (name) lua_pushstring(L, name);
  else lua_pushfstring(L, "%I", v);
}

/* Push the printed form of an address (addr.c's tables print themselves,
** abstract unix names are "@name" already). */
static void push_addrtext(lua_State *L, const struct sockaddr_storage *ss, socklen_t len) {
  addr_push(L, (const struct sockaddr *)ss, len);
  luaL_tolstring(L, -1, NULL);
  lua_remove(L, -2);   /* the address itself */
}

/* Push the text of the local (peer = 0) or peer address of fd; nothing
** and 0 when there is none (unconnected, unnamed unix socket). */
static int push_sockname(lua_State *L, int fd, int peer) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
               : getsockname(fd, (struct sockaddr *)&ss, &len);
  if (r < 0 || len <= sizeof(sa_family_t)) return 0;
  push_addrtext(L, &ss, len);
  return 1;
}

/* "socket (fd 7, AF_INET, SOCK_STREAM, 127.0.0.1:8001 -> 127.0.0.1:40312)",
** the addresses only when there are, or "socket (closed)". */
static int sock_tostring(lua_State *L) {
  LSocket *s = sock_check(L, 1);
  if (s->w.fd < 0) {
    lua_pushliteral(L, "socket (closed)");
    return 1;
  }
  int top = lua_gettop(L);
  int peer = push_sockname(L, s->w.fd, 1);   /* at top + 1 when there is one */
  lua_pushfstring(L, "socket (fd %d, ", s->w.fd);
  push_const(L, s->family, "AF_");
  lua_pushliteral(L, ", ");
  push_const(L, s->type, "SOCK_");
  if (push_sockname(L, s->w.fd, 0)) {
    lua_pushliteral(L, ", ");
    lua_insert(L, -2);
  } else if (peer) {
    lua_pushliteral(L, ", (unnamed)");
  }
  if (peer) {
    lua_pushliteral(L, " -> ");
    lua_pushvalue(L, top + 1);
  }
  lua_pushliteral(L, ")");
  lua_concat(L, lua_gettop(L) - top - peer);
  return 1;
}

/* __newindex: a socket has nothing to assign; family, type and proto are
** read-only as in Python, and other names would be lost on a userdata. */
static int sock_newindex(lua_State *L) {
  sock_check(L, 1);
  return luaL_error(L, "socket field '%s' is read-only", luaL_tolstring(L, 2, NULL));
}

static int lsock_getdefaulttimeout(lua_State *L) {
  double t = sock_defaulttimeout(L);
  if (t < 0) lua_pushnil(L);
  else lua_pushnumber(L, t);
  return 1;
}

static int lsock_setdefaulttimeout(lua_State *L) {
  lua_pushnumber(L, aux_checktimeout(L, 1, 1, "timeout"));
  lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_TIMEOUT_KEY);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg sock_methods[] = {
  {"close", sock_close},
  {"detach", sock_detach},
  {"dup", sock_dup},
  {"fileno", sock_fileno},
  {"settimeout", sock_settimeout},
  {"gettimeout", sock_gettimeout},
  {"setblocking", sock_setblocking},
  {"getblocking", sock_getblocking},
  {"get_inheritable", sock_get_inheritable},
  {"set_inheritable", sock_set_inheritable},
  {"setsockopt", sock_setsockopt},
  {"getsockopt", sock_getsockopt},
  {"shutdown", sock_shutdown},
  {NULL, NULL}
};

static const luaL_Reg sock_metamethods[] = {
  {"__gc", sock_gc},
  {"__close", sock_close},   /* like close(): waiters are told "closed" */
  {"__tostring", sock_tostring},
  {"__newindex", sock_newindex},
  {NULL, NULL}
};

static const luaL_Reg lsock_funcs[] = {
  {"socket", lsock_socket},
  {"socketpair", lsock_socketpair},
  {"fromfd", lsock_fromfd},
  {"gettime", lsock_gettime},
  {"sleep", lsock_sleep},
  {"getdefaulttimeout", lsock_getdefaulttimeout},
  {"setdefaulttimeout", lsock_setdefaulttimeout},
  {NULL, NULL}
};

/* The template of the socket metatables (push_kindmeta), made with the
** first socket: metamethods, and in __index the methods of every file. */
void sock_pushtemplate(lua_State *L) {
  static const luaL_Reg *const method_lists[] = {
    sock_methods, sockio_methods, msg_methods, stream_methods, buffer_methods,
    sendfile_methods
  };
  if (luaL_getmetatable(L, LSOCK_SOCKET) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_setfuncs(L, sock_metamethods, 0);
  lua_newtable(L);
  for (size_t i = 0; i < sizeof method_lists / sizeof method_lists[0]; i++)
    luaL_setfuncs(L, method_lists[i], 0);
  lua_setfield(L, -2, "__index");
  aux_registerclass(L, LSOCK_SOCKET);
}

/* Run the bundled module name, a chunk that returns function(socket),
** on the module table at idx. */
static void add_luafuncs(lua_State *L, int idx, const char *name) {
  lib_loadmodule(L, name);
  lua_call(L, 0, 1);
  lua_pushvalue(L, idx);
  lua_call(L, 1, 0);
}

/* The constants and has_ipv6 (a syscall), made at the first lookup the
** table cannot answer.  Again after a failure (out of memory): the
** fields are set anew. */
static void add_constants(lua_State *L, int idx) {
  lua_pushliteral(L, "has_ipv6");
  if (lua_rawget(L, idx) != LUA_TNIL) {   /* the last one: all there */
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  set_constants(L);
  lua_pop(L, 1);
}

/* The errno table, as large as the constants: made only at the first
** lookup the constants do not answer either. */
static void add_errno(lua_State *L, int idx) {
  lua_pushliteral(L, "errno");
  if (lua_rawget(L, idx) == LUA_TNIL) {
    lua_pushvalue(L, idx);
    err_pusherrnotable(L);
    lua_setfield(L, -2, "errno");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Protected, with the module table as upvalue 1: the Lua functions. */
static int add_luamodules(lua_State *L) {
  add_luafuncs(L, lua_upvalueindex(1), "luasock.create");
  add_luafuncs(L, lua_upvalueindex(1), "luasock.group");
  return 0;
}

/* What a script may never use is made at its first use, so that require
** costs little: the data above at the first lookup the module table
** cannot answer, the functions written in Lua (lua/luasock/, compiled
** then) at the first such lookup the data does not answer either, both
** at the first pairs.  The metatable that does it goes first, so that
** the chunks see the plain table, and comes back if one fails (out of
** memory), to try again. */
static void add_lazyfuncs(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return;   /* done already */
  add_constants(L, idx);   /* the chunks use the constants and errno */
  add_errno(L, idx);
  lua_pushnil(L);
  lua_setmetatable(L, idx);
  lua_pushvalue(L, idx);
  lua_pushcclosure(L, add_luamodules, 1);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_pushvalue(L, -2);
    lua_setmetatable(L, idx);
    lua_error(L);
  }
  lua_pop(L, 1);
}

/* Pushes module[key], arguments 1 and 2 of __index; whether it is there. */
static int raw_lookup(lua_State *L) {
  lua_pushvalue(L, 2);
  return lua_rawget(L, 1) != LUA_TNIL;
}

/* __index of the module table while some of it waits: each part is made
** only when the ones before it do not have the key. */
static int module_index(lua_State *L) {
  lua_settop(L, 2);
  add_constants(L, 1);
  if (raw_lookup(L)) return 1;
  add_errno(L, 1);
  if (raw_lookup(L)) return 1;
  add_lazyfuncs(L, 1);
  raw_lookup(L);
  return 1;
}

/* __pairs of the same: the whole table, as next walks it. */
static int module_next(lua_State *L) {
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

static int module_pairs(lua_State *L) {
  add_lazyfuncs(L, 1);
  lua_pushcfunction(L, module_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

static void set_lazymeta(lua_State *L) {
  static const luaL_Reg meta[] = {{"__index", module_index}, {"__pairs", module_pairs}, {NULL, NULL}};
  luaL_newlib(L, meta);
  lua_setmetatable(L, -2);
}

/* Registry key of the module's table: opening the module again (require
** "socket", require "luasock", socket.ssl, an embedder's luaL_requiref)
** gives the same table. */
#define MODULE_KEY "luasock.module"

/* package.preload["socket.ssl"], for an embedder that opened only this
** module (luaopen_socket); nothing when the package library is missing. */
static void preload_ssl(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE) == LUA_TTABLE) {
    lua_pushcfunction(L, luaopen_socket_ssl);
    lua_setfield(L, -2, "socket.ssl");
  }
  lua_pop(L, 1);
}

int luaopen_socket(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, MODULE_KEY) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  loop_open(L);
  lua_createtable(L, 0, 256);   /* room for every field: no rehash as they come */
  luaL_setfuncs(L, lsock_funcs, 0);
  luaL_setfuncs(L, addr_funcs, 0);
  luaL_setfuncs(L, resolve_funcs, 0);
  luaL_setfuncs(L, msg_funcs, 0);
  luaL_setfuncs(L, select_funcs, 0);
  luaL_setfuncs(L, buffer_funcs, 0);
  luaL_setfuncs(L, relay_funcs, 0);
  luaL_setfuncs(L, loop_funcs, 0);
  workers_open(L);
  luaL_setfuncs(L, sync_funcs, 0);
  luaL_setfuncs(L, signals_funcs, 0);
  luaL_setfuncs(L, scope_funcs, 0);
  set_lazymeta(L);   /* constants, errno and functions written in Lua: when needed */
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
  preload_ssl(L);
  return 1;
}

/*
** sockio.c - the socket methods that move data or may wait: bind,
** listen, accept, connect, connect_ex, recv, send, sendall, recvfrom,
** sendto, getsockname, getpeername.
**
** Each call tries its syscall first; on EAGAIN it goes to wait_fd with a
** continuation that retries.  The deadline (computed once per call, so a
** timeout bounds the whole call) and any running count are kept at fixed
** indices of the Lua stack, never in C locals, because inside a task the
** continuation runs after a yield.  Every send uses MSG_NOSIGNAL.
*/
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "lsock.h"

/* listen() without a backlog: Python's choice, min(SOMAXCONN, 128). */
#define DEFAULT_BACKLOG (SOMAXCONN < 128 ? SOMAXCONN : 128)

/* A parsed address kept on the stack across waits (connect retries). */
typedef struct SockAddr {
  socklen_t len;
  struct sockaddr_storage ss;
} SockAddr;

/* Parse the address at idx (and idx+1) for s, then push it as a new
** userdata; returns it, or NULL after pushing a resolver error (nil, msg,
** code: 3 values) for the caller to return.  The address is read before
** anything is pushed, as idx+1 may be the first free slot. */
static SockAddr *push_sockaddr(lua_State *L, LSocket *s, int idx) {
  SockAddr tmp;
  int rc = addr_check(L, idx, s->family, &tmp.ss, &tmp.len);
  if (rc != 0) {
    err_pushgai(L, rc, errno);
    return NULL;
  }
  SockAddr *a = (SockAddr *)lua_newuserdatauv(L, sizeof *a, 0);
  *a = tmp;
  return a;
}

/* Wait for s in direction dir until the deadline at stack index idx.  A
** deadline already past times out even if the socket is ready, so a call
** that keeps making slow progress still ends at its deadline. */
static int wait_for(lua_State *L, LSocket *s, int dir, int idx, lua_KContext ctx,
                    lua_KFunction k) {
  double deadline = lua_tonumber(L, idx);
  if (deadline > 0 && clock_now() >= deadline) return LSOCK_ETIMEOUT;
  return wait_fd(L, &s->w, dir, deadline, ctx, k);
}

/* ---- bind, listen, names -------------------------------------------- */

/* bind after the name in its address, if any, was resolved (off the
** loop thread inside a task). */
static int bind_resolved(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  LSocket *s = sock_resumed(L, 1, status);
  int n = addr_resolved(L, 2, status);
  if (n != 0) return n;
  if (s->w.fd < 0) return err_push(L, LSOCK_ECLOSED);   /* closed meanwhile */
  SockAddr *a = push_sockaddr(L, s, 2);
  if (a == NULL) return 3;
  int err = bind(s->w.fd, (struct sockaddr *)&a->ss, a->len) == 0 ? 0 : errno;
  return err_pushresult(L, err);
}

/* s:bind(address) or s:bind(host, port) */
static int sock_bind(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  lua_settop(L, 3);
  addr_resolve(L, 2, s->family, 0, bind_resolved);
  return bind_resolved(L, LUA_OK, 0);
}

/* s:listen([backlog]); a negative backlog counts as 0, as in Python. */
static int sock_listen(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  lua_Integer backlog = luaL_optinteger(L, 2, DEFAULT_BACKLOG);
  if (backlog < 0) backlog = 0;
  if (backlog > 65535) backlog = 65535;   /* the kernel caps it anyway */
  int err = listen(s->w.fd, (int)backlog) == 0 ? 0 : errno;
  return err_pushresult(L, err);
}

typedef int (*NameFn)(int, struct sockaddr *, socklen_t *);

static int push_name(lua_State *L, NameFn fn) {
  LSocket *s = sock_checkopen(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (fn(s->w.fd, (struct sockaddr *)&ss, &len) != 0) return err_push(L, errno);
  addr_push(L, (struct sockaddr *)&ss, len);
  return 1;
}

static int sock_getsockname(lua_State *L) {
  return push_name(L, getsockname);
}

static int sock_getpeername(lua_State *L) {
  return push_name(L, getpeername);
}

/* ---- accept ------------------------------------------------------------ */

/* A SockAddr read back after a yield: the block's size and its length
** field, which connect and sendto pass to the kernel, are checked. */
static SockAddr *sockaddr_resumed(lua_State *L, int idx) {
  SockAddr *a = (SockAddr *)wait_block(L, idx, sizeof(SockAddr));
  if (a->len > sizeof a->ss) wait_changed(L);
  return a;
}

/* Stack: 1 listener, 2 deadline, 3 the new socket (closed until accept4
** gives it a descriptor).  After a yield slot 3 must still hold a closed
** socket, checked before accept4: a descriptor accepted into anything
** else would be lost (or overwrite an open socket's). */
static int accept_k(lua_State *L, int status, lua_KContext ctx) {
  LSocket *s = sock_resumed(L, 1, status);
  if (status != LUA_OK && sock_check(L, 3)->w.fd >= 0) wait_changed(L);
  int err = wait_resumed(L, status);
  while (err == 0) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(s->w.fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      ((LSocket *)lua_touserdata(L, 3))->w.fd = fd;
      addr_push(L, (struct sockaddr *)&ss, len);
      return 2;
    }
    err = errno;
    if (err == EINTR || err == ECONNABORTED) err = 0;    /* retry */
    else if (err == EAGAIN)
      err = wait_for(L, s, WAIT_READ, 2, ctx, accept_k);
  }
  return err_push(L, err);
}

/* s:accept() -> conn, address; conn has the default timeout. */
static int sock_accept(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  lua_settop(L, 1);
  lua_pushnumber(L, sock_deadline(s, 0));
  sock_push(L, s->family, s->type, s->proto);
  return accept_k(L, LUA_OK, 0);
}

/* ---- connect, connect_ex ------------------------------------------------ */

enum { CONNECT_EX = 1, CONNECT_AGAIN = 2 };   /* bits of the ctx */

/* The outcome of connect_k as Lua values: connect returns true or the
** error triple; connect_ex returns 0 or the errno (ETIMEDOUT on timeout). */
static int connect_done(lua_State *L, lua_KContext ctx, int err) {
  if (!(ctx & CONNECT_EX)) return err_pushresult(L, err);
  if (err == LSOCK_ETIMEOUT) err = ETIMEDOUT;
  else if (err == LSOCK_ECLOSED) err = EBADF;
  lua_pushinteger(L, err);
  return 1;
}

/* After a wait: SO_ERROR says how an in-progress connect ended; 0 with
** no peer yet (a spurious wake) means wait again (EINPROGRESS). */
static int connect_status(int fd) {
  int soerr = 0;
  socklen_t n = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &n) != 0) return errno;
  if (soerr != 0) return soerr;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
    return errno == ENOTCONN ? EINPROGRESS : errno;
  return 0;
}

/* Stack: 1 socket, 2 deadline, 3 SockAddr.  TCP reports EINPROGRESS and
** is then checked with SO_ERROR; AF_UNIX reports EAGAIN on a full backlog
** and connect() itself is retried once writable (CONNECT_AGAIN).  EINTR
** leaves the connect going on, as EINPROGRESS does. */
static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  LSocket *s = sock_resumed(L, 1, status);
  SockAddr *a = status == LUA_OK ? (SockAddr *)lua_touserdata(L, 3) : sockaddr_resumed(L, 3);
  int err = wait_resumed(L, status);
  int again = status == LUA_OK || (ctx & CONNECT_AGAIN);
  while (err == 0) {
    if (again) err = connect(s->w.fd, (struct sockaddr *)&a->ss, a->len) == 0 ? 0 : errno;
    else err = connect_status(s->w.fd);
    if (err == EISCONN && status != LUA_OK) err = 0;   /* a retried connect is done */
    if (err != EINPROGRESS && err != EALREADY && err != EINTR && err != EAGAIN) break;
    again = err == EAGAIN;
    ctx = (ctx & CONNECT_EX) | (again ? CONNECT_AGAIN : 0);
    if (lua_tonumber(L, 2) == 0) {     /* non-blocking: report, as Python does */
      err = again ? EAGAIN : EINPROGRESS;
      break;
    }
    err = wait_for(L, s, WAIT_WRITE, 2, ctx, connect_k);
    status = LUA_YIELD;                /* from here on, connect is under way */
  }
  return connect_done(L, ctx, err);
}

/* connect after the name in its address, if any, was resolved (off the
** loop thread inside a task): parse the address and start connecting. */
static int connect_resolved(lua_State *L, int status, lua_KContext ctx) {
  LSocket *s = sock_resumed(L, 1, status);
  int n = addr_resolved(L, 2, status);
  if (n != 0) return n;
  if (s->w.fd < 0) return connect_done(L, ctx, LSOCK_ECLOSED);  /* closed meanwhile */
  lua_settop(L, 3);                    /* 2-3: the address */
  lua_pushnumber(L, sock_deadline(s, 0));   /* 4 */
  if (push_sockaddr(L, s, 2) == NULL) return 3;   /* 5 */
  lua_replace(L, 3);
  lua_replace(L, 2);                   /* now 1 socket, 2 deadline, 3 SockAddr */
  return connect_k(L, LUA_OK, ctx);
}

/* Shared entry of connect and connect_ex. */
static int connect_start(lua_State *L, lua_KContext ctx) {
  LSocket *s = sock_checkopen(L, 1);
  lua_settop(L, 3);
  addr_resolve(L, 2, s->family, ctx, connect_resolved);
  return connect_resolved(L, LUA_OK, ctx);
}

/* s:connect(address) or s:connect(host, port) -> true */
static int sock_connect(lua_State *L) {
  return connect_start(L, 0);
}

/* s:connect_ex(address) -> 0 or an errno */
static int sock_connect_ex(lua_State *L) {
  return connect_start(L, CONNECT_EX);
}

/* ---- recv, recvfrom ------------------------------------------------------ */

/* Sizes up to this are received on the C stack and copied once into the
** result string: no buffer box per call for the collector to reclaim
** (the echo benchmark's recv(65536) made one per request). */
#define RECV_STACK_MAX 65536

/* After the data, push the sender's address when from is set. */
static void recv_push(lua_State *L, LSocket *s, int from,
                      const struct sockaddr_storage *ss, socklen_t len) {
  if (!from) return;
  if (len == 0 && s->family == AF_UNIX) lua_pushliteral(L, "");   /* unnamed */
  else addr_push(L, (const struct sockaddr *)ss, len);
}

/* Cut a large bufsize to what one recv can return now, so that recv(1e9)
** allocates no gigabyte for a few bytes: a stream's queued bytes
** (FIONREAD; a stream may return fewer than asked anyway), else the size
** of the next datagram (MSG_PEEK | MSG_TRUNC gives its real length; none
** queued: EAGAIN, returned).  Nothing queued yet on a stream: the stack
** buffer's size.  Returns 0 and sets *room, or an errno. */
static int recv_room(LSocket *s, size_t size, size_t *room) {
  *room = size;
  if (size <= RECV_STACK_MAX) return 0;
  size_t avail;
  if (s->type == SOCK_STREAM) {
    int q = 0;
    avail = ioctl(s->w.fd, FIONREAD, &q) == 0 && q > 0 ? (size_t)q : 0;
  } else {
    ssize_t n = recv(s->w.fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0) return errno;
    avail = (size_t)n;
  }
  if (avail < size) *room = avail > RECV_STACK_MAX ? avail : RECV_STACK_MAX;
  return 0;
}

/* One recvfrom of at most size bytes (never more, even with MSG_TRUNC),
** cut by recv_room: pushes the data, and the sender when from is set, and
** returns 0; or returns the errno, pushing nothing.  Large sizes go
** straight into a luaL_Buffer, released before returning: it may not live
** across a yield (and lua_settop over its to-be-closed box is unsafe in
** 5.4.4). */
static int recv_once(lua_State *L, LSocket *s, size_t size, int flags, int from,
                     size_t *got) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  ssize_t n;
  int err = recv_room(s, size, &size);
  if (err != 0) return err;
  if (size <= RECV_STACK_MAX) {
    char buf[RECV_STACK_MAX];
    n = recvfrom(s->w.fd, buf, size, flags, from ? (struct sockaddr *)&ss : NULL,
                 from ? &len : NULL);   /* no address to copy out for recv */
    if (n < 0) return errno;
    *got = (size_t)n > size ? size : (size_t)n;
    lua_pushlstring(L, buf, *got);
  } else {
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, size);
    n = recvfrom(s->w.fd, p, size, flags, (struct sockaddr *)&ss, &len);
    err = n < 0 ? errno : 0;
    *got = n < 0 ? 0 : (size_t)n > size ? size : (size_t)n;
    luaL_pushresultsize(&b, *got);
    if (err != 0) {
      lua_pop(L, 1);
      return err;
    }
  }
  recv_push(L, s, from, &ss, len);
  return 0;
}

static int recv_k(lua_State *L, int status, lua_KContext ctx);
static int recvfrom_k(lua_State *L, int status, lua_KContext ctx);

/* Stack: 1 socket, 2 bufsize, 3 deadline.  ctx: the flags (they need no
** stack slot to be read back after a wait); from: recvfrom, whose
** continuation is recvfrom_k.  The first pass (status LUA_OK) comes
** straight from recv_start; a resumed one through recv_k or recvfrom_k,
** which check the slots first. */
static int recv_run(lua_State *L, int status, lua_KContext ctx, int from) {
  LSocket *s = sock_resumed(L, 1, status);
  size_t size = (size_t)lua_tointeger(L, 2);
  int flags = (int)ctx;
  int err = wait_resumed(L, status);
  while (err == 0) {
    size_t n;
    err = recv_once(L, s, size, flags, from, &n);
    if (err == 0) {
      if (n > 0 && n < size && flags == 0 && s->type == SOCK_STREAM)
        wait_setidle(&s->w, WAIT_READ);   /* drained: the next recv waits first */
      return from ? 2 : 1;
    }
    if (err == EINTR) err = 0;
    else if (err == EAGAIN) err = wait_for(L, s, WAIT_READ, 3, ctx, from ? recvfrom_k : recv_k);
  }
  return err_push(L, err);
}

/* After a wait: a bufsize debug.setlocal changed would only size a
** buffer (recv_room bounds it), but a clear error beats a wrong result.
** The socket is checked by sock_resumed. */
static void recv_checkresumed(lua_State *L, int status) {
  int isint;   /* the caller's own argument: 10.0 passed luaL_checkinteger */
  if (status != LUA_OK && (lua_tointegerx(L, 2, &isint) < 0 || !isint))
    wait_changed(L);
}

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  recv_checkresumed(L, status);
  return recv_run(L, status, ctx, 0);
}

static int recvfrom_k(lua_State *L, int status, lua_KContext ctx) {
  recv_checkresumed(L, status);
  return recv_run(L, status, ctx, 1);
}

static int recv_start(lua_State *L, int from) {
  LSocket *s = sock_checkopen(L, 1);
  lua_Integer size = luaL_checkinteger(L, 2);
  luaL_argcheck(L, size >= 0, 2, "negative buffer size");
  int flags = sock_optflags(L, 3);
  if (size == 0 && !from) {   /* as Python: nothing asked, nothing to wait for */
    lua_pushliteral(L, "");
    return 1;
  }
  double deadline = sock_deadline(s, flags);
  lua_settop(L, 2);
  lua_pushnumber(L, deadline);
  if (wait_idle(L, &s->w, WAIT_READ, deadline)) {   /* see wait_idle (lsock.h) */
    int err = wait_for(L, s, WAIT_READ, 3, flags, from ? recvfrom_k : recv_k);
    if (err != 0) return err_push(L, err);
  }
  return recv_run(L, LUA_OK, flags, from);
}

/* s:recv(bufsize [, flags]) -> data, "" at the end of the stream; recv(0)
** returns "" at once, even with no data queued (a datagram stays queued) */
static int sock_recv(lua_State *L) {
  return recv_start(L, 0);
}

/* s:recvfrom(bufsize [, flags]) -> data, address; recvfrom(0) waits for a
** datagram and discards it, as Python's does */
static int sock_recvfrom(lua_State *L) {
  return recv_start(L, 1);
}

/* ---- send, sendall, sendto ----------------------------------------------- */

/* One sendto of len bytes at p with the flags (3) and address (5) on
** the stack; errno is left as the syscall set it. */
static ssize_t send_once(lua_State *L, LSocket *s, const char *p, size_t len) {
  int flags = (int)lua_tointeger(L, 3) | MSG_NOSIGNAL;   /* EPIPE, never SIGPIPE */
  SockAddr *a = (SockAddr *)lua_touserdata(L, 5);
  return sendto(s->w.fd, p, len, flags, a ? (struct sockaddr *)&a->ss : NULL,
                a ? a->len : 0);
}

/* The failure of send (nil, msg, errno) or sendall (..., bytes sent). */
static int send_fail(lua_State *L, int err, size_t sent, lua_KContext ctx) {
  err_push(L, err);
  if (!ctx) return 3;
  lua_pushinteger(L, (lua_Integer)sent);
  return 4;
}

static int send_k(lua_State *L, int status, lua_KContext ctx);

/* Stack: 1 socket, 2 data, 3 flags, 4 deadline, 5 SockAddr or nil
** (sendto), 6 bytes sent so far.  ctx 1: sendall (loop until all is
** sent; a failure also reports the count); else one send.  The first
** pass comes straight from send_layout, a resumed one through send_k. */
static int send_run(lua_State *L, int status, lua_KContext ctx) {
  LSocket *s = sock_resumed(L, 1, status);
  size_t size, sent = (size_t)lua_tointeger(L, 6);
  const char *data = lua_tolstring(L, 2, &size);
  int err = wait_resumed(L, status);
  while (err == 0) {
    ssize_t n = send_once(L, s, data + sent, size - sent);
    err = n < 0 ? errno : 0;
    if (n >= 0 && !ctx) {
      lua_pushinteger(L, n);
      return 1;
    }
    if (n >= 0 && (sent += (size_t)n) == size) return err_pushresult(L, 0);
    if (err == EINTR) err = 0;
    else if (err == EAGAIN) {
      lua_pushinteger(L, (lua_Integer)sent);
      lua_replace(L, 6);               /* the count survives the yield */
      err = wait_for(L, s, WAIT_WRITE, 4, ctx, send_k);
    }
  }
  return send_fail(L, err, sent, ctx);
}

/* send_run after a wait: the data must still be a string at least as
** long as the count of bytes sent (else data + sent would point past
** it), and the address nil or a SockAddr. */
static int send_k(lua_State *L, int status, lua_KContext ctx) {
  if (status != LUA_OK) {
    lua_Integer sent = lua_tointeger(L, 6);
    if (lua_type(L, 2) != LUA_TSTRING || !lua_isinteger(L, 6) || sent < 0 ||
        (size_t)sent > lua_rawlen(L, 2))
      wait_changed(L);
    if (!lua_isnil(L, 5)) sockaddr_resumed(L, 5);
  }
  return send_run(L, status, ctx);
}

/* Lay out the stack for send_k.  sendto: the address at addr_idx (3 or
** 4), its name already resolved; send and sendall: addr_idx 0. */
static int send_layout(lua_State *L, LSocket *s, int addr_idx, lua_KContext ctx,
                       size_t sent) {
  if (addr_idx && push_sockaddr(L, s, addr_idx) == NULL) return 3;
  lua_pushnumber(L, sock_deadline(s, addr_idx == 3 ? 0 : (int)lua_tointeger(L, 3)));
  if (addr_idx == 3) {                 /* 1 s, 2 data, 3 addr, 4 SockAddr, 5 deadline */
    lua_insert(L, 4);
    lua_pushnil(L);
    lua_replace(L, 3);                 /* no flags */
  } else if (addr_idx == 4) {
    lua_replace(L, 4);                 /* the address arg is no longer needed */
  } else {
    lua_pushnil(L);                    /* no address */
  }
  lua_pushinteger(L, (lua_Integer)sent);   /* 6: bytes sent */
  return send_run(L, LUA_OK, ctx);
}

/* sendto after the name in its address (at index ctx), if any, was
** resolved. */
static int sendto_resolved(lua_State *L, int status, lua_KContext ctx) {
  LSocket *s = sock_resumed(L, 1, status);
  int n = addr_resolved(L, (int)ctx, status);
  if (n != 0) return n;
  if (s->w.fd < 0) return err_push(L, LSOCK_ECLOSED);   /* closed meanwhile */
  return send_layout(L, s, (int)ctx, 0, 0);
}

/* send and sendall: one try before the stack is laid out for send_k, so
** that data the socket buffer takes at once (nearly always) costs no
** more than the syscall. */
static int send_first(lua_State *L, LSocket *s, int flags, lua_KContext ctx) {
  size_t len;
  const char *data = lua_tolstring(L, 2, &len);
  ssize_t n = send(s->w.fd, data, len, flags | MSG_NOSIGNAL);
  int err = n < 0 ? errno : 0;
  if (n >= 0 && !ctx) {
    lua_pushinteger(L, n);
    return 1;
  }
  if (n >= 0 && (size_t)n == len) return err_pushresult(L, 0);
  if (err != 0 && err != EAGAIN && err != EINTR) return send_fail(L, err, 0, ctx);
  lua_settop(L, 3);
  return send_layout(L, s, 0, ctx, n > 0 ? (size_t)n : 0);
}

/* Check data and flags (and sendto's address at addr_idx, 3 or 4; else 0). */
static int send_start(lua_State *L, int addr_idx, lua_KContext ctx) {
  LSocket *s = sock_checkopen(L, 1);
  luaL_checkstring(L, 2);
  if (addr_idx == 0) return send_first(L, s, sock_optflags(L, 3), ctx);
  if (addr_idx == 4) sock_optflags(L, 3);
  lua_settop(L, addr_idx);
  addr_resolve(L, addr_idx, s->family, addr_idx, sendto_resolved);
  return sendto_resolved(L, LUA_OK, addr_idx);
}

/* s:send(data [, flags]) -> bytes sent */
static int sock_send(lua_State *L) {
  return send_start(L, 0, 0);
}

/* s:sendall(data [, flags]) -> true, or nil, msg, errno, bytes_sent */
static int sock_sendall(lua_State *L) {
  return send_start(L, 0, 1);
}

/* s:sendto(data [, flags], address) -> bytes sent.  With two arguments
** the second is the address. */
static int sock_sendto(lua_State *L) {
  int addr_idx = lua_gettop(L) >= 4 ? 4 : 3;
  sock_checkopen(L, 1);
  luaL_checkany(L, addr_idx);
  return send_start(L, addr_idx, 0);
}

const luaL_Reg sockio_methods[] = {
  {"bind", sock_bind},
  {"listen", sock_listen},
  {"accept", sock_accept},
  {"connect", sock_connect},
  {"connect_ex", sock_connect_ex},
  {"recv", sock_recv},
  {"recvfrom", sock_recvfrom},
  {"send", sock_send},
  {"sendall", sock_sendall},
  {"sendto", sock_sendto},
  {"getsockname", sock_getsockname},
  {"getpeername", sock_getpeername},
  {NULL, NULL}
};

/*
** sockio.c - the socket methods that move data or may wait: bind,
** listen, accept, connect, connect_ex, recv, send, sendall, recvfrom,
** sendto, getsockname, getpeername.
**
** Each call that may wait checks its arguments, fills an operation record
** (wait.h: a try step making one syscall, a push step for the results,
** the socket, the flags and sizes) and returns what the retry driver
** wait_op returns: the driver retries, waits and resumes, so nothing here
** loops on a syscall or keeps state on the Lua stack.  Every send uses
** MSG_NOSIGNAL.
*/
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "base/errors.h"
#include "addr.h"
#include "base/aux.h"
#include "core/loop.h"
#include "core/wait.h"
#include "socket.h"

/* listen() without a backlog: Python's choice, min(SOMAXCONN, 128). */
#define DEFAULT_BACKLOG (SOMAXCONN < 128 ? SOMAXCONN : 128)

/* A parsed address, in a userdata while a call may wait on it (bind,
** connect, sendto); sendto anchors its data as the block's user value. */
typedef struct SockAddr {
  socklen_t len;
  struct sockaddr_storage ss;
} SockAddr;

/* Push an empty SockAddr with nuv user values; op's anchor 1. */
static SockAddr *sockaddr_push(lua_State *L, Op *op, int nuv) {
  SockAddr *a = (SockAddr *)lua_newuserdatauv(L, sizeof *a, nuv);
  op->obj = a;
  op->anchor[1] = (unsigned char)lua_gettop(L);
  return a;
}

/* ---- bind, listen, names -------------------------------------------- */

/* bind to the address op->obj (a SockAddr): pushes true.  Never waits. */
static int bind_try(lua_State *L, Op *op) {
  const SockAddr *a = (const SockAddr *)op->obj;
  if (bind(sock_ofop(op)->w.fd, (const struct sockaddr *)&a->ss, a->len) != 0) return errno;
  lua_pushboolean(L, 1);
  return 0;
}

/* s:bind(address) or s:bind(host, port); a name in the address is looked
** up first (off the loop thread inside a task). */
static int sock_bind(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  lua_settop(L, 3);
  Op op;
  sock_opinit(&op, s, WAIT_WRITE, 0, bind_try, wait_pushresults);
  SockAddr *a = sockaddr_push(L, &op, 0);
  return resolve_run(L, 2, s->family, &a->ss, &a->len, &op);
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

/* One accept4 into the new socket (op->obj, closed until then): pushes
** it and the peer's address.  A connection aborted before we took it is
** skipped: the driver tries again at once.  Out of descriptors or memory,
** the driver tries again after a short delay: meanwhile the tasks serving
** the clients we have run and may free some (a level-triggered poll
** would spin on the connection still queued). */
static int accept_try(lua_State *L, Op *op) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = accept4(sock_ofop(op)->w.fd, (struct sockaddr *)&ss, &len,
                   SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ECONNABORTED) return OP_AGAIN;
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) return wait_backoff(op, e);
    return e;
  }
  ((LSocket *)op->obj)->w.fd = fd;
  wait_pushanchor(L, op, 1);
  addr_push(L, (struct sockaddr *)&ss, len);
  return 0;
}

/* s:accept() -> conn, address; conn has the default timeout.  conn is
** made (closed) before accept4, so a memory error loses no descriptor. */
static int sock_accept(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  lua_settop(L, 1);
  Op op;
  sock_opinit(&op, s, WAIT_READ, 0, accept_try, wait_pushresults);
  op.obj = sock_push(L, s->family, s->type, s->proto);
  op.anchor[1] = 2;
  return wait_op(L, &op);
}

/* ---- connect, connect_ex ------------------------------------------------ */

/* Where a connect stands (op->done): call connect() (first, or again for
** AF_UNIX after a full backlog said EAGAIN), or ask SO_ERROR how the
** connect under way ended (TCP's EINPROGRESS). */
enum { CONNECT_FIRST, CONNECT_AGAIN, CONNECT_CHECK };
enum { CONNECT_EX = 1 };   /* op->flags: connect_ex's results */

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

/* One step of a connect to the address op->obj (a SockAddr).  A
** connect() interrupted by a signal goes on in the kernel: tried again
** (the driver does so at once), it says EALREADY, or EISCONN once done,
** which every connect() but the first takes for success.  Pushes
** nothing: connect_push makes the results. */
static int connect_try(lua_State *L, Op *op) {
  (void)L;
  LSocket *s = sock_ofop(op);
  const SockAddr *a = (const SockAddr *)op->obj;
  int err;
  if (op->done == CONNECT_CHECK) {
    err = connect_status(s->w.fd);
  } else {
    int first = op->done == CONNECT_FIRST;
    op->done = CONNECT_AGAIN;
    err = connect(s->w.fd, (const struct sockaddr *)&a->ss, a->len) == 0 ? 0 : errno;
    if (err == EISCONN && !first) return 0;
  }
  if (err == EAGAIN) op->done = CONNECT_AGAIN;
  else if (err == EINPROGRESS || err == EALREADY) op->done = CONNECT_CHECK;
  else return err;
  return OP_WANTWRITE;
}

/* connect returns true or the error triple; connect_ex returns 0 or the
** errno (ETIMEDOUT on timeout).  Non-blocking, a connect under way
** reports EINPROGRESS, as in Python. */
static int connect_push(lua_State *L, Op *op, int err, int nres) {
  (void)nres;   /* connect_try pushes nothing */
  if (err == EAGAIN && op->done == CONNECT_CHECK) err = EINPROGRESS;
  if (!(op->flags & CONNECT_EX)) return err_pushresult(L, err);
  if (err == LSOCK_ETIMEOUT) err = ETIMEDOUT;
  else if (err == LSOCK_ECLOSED) err = EBADF;
  lua_pushinteger(L, err);
  return 1;
}

/* Shared entry of connect and connect_ex: a name in the address is
** looked up first (off the loop thread inside a task). */
static int connect_start(lua_State *L, int ex) {
  LSocket *s = sock_checkopen(L, 1);
  lua_settop(L, 3);
  Op op;
  sock_opinit(&op, s, WAIT_WRITE, 0, connect_try, connect_push);
  op.flags = ex;
  SockAddr *a = sockaddr_push(L, &op, 0);
  return resolve_run(L, 2, s->family, &a->ss, &a->len, &op);
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
static int recv_once(lua_State *L, LSocket *s, size_t size, int flags, int from) {
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
    if (flags == 0) wait_readgot(&s->w, (size_t)n, size);
    lua_pushlstring(L, buf, (size_t)n > size ? size : (size_t)n);
  } else {
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, size);
    n = recvfrom(s->w.fd, p, size, flags, (struct sockaddr *)&ss, &len);
    err = n < 0 ? errno : 0;
    if (flags == 0 && n > 0) wait_readgot(&s->w, (size_t)n, size);
    luaL_pushresultsize(&b, n < 0 ? 0 : (size_t)n > size ? size : (size_t)n);
    if (err != 0) {
      lua_pop(L, 1);
      return err;
    }
  }
  recv_push(L, s, from, &ss, len);
  return 0;
}

/* A plain recv on a socket its last recv found drained parks before it
** tries (the readiness hint, wait.h). */
static int recv_try(lua_State *L, Op *op) {
  if (op->flags == 0 && wait_skipread(L, op)) return EAGAIN;
  return recv_once(L, sock_ofop(op), op->size, op->flags, 0);
}

static int recvfrom_try(lua_State *L, Op *op) {
  if (op->flags == 0 && wait_skipread(L, op)) return EAGAIN;
  return recv_once(L, sock_ofop(op), op->size, op->flags, 1);
}

/* recv and recvfrom: the record of one recv of bufsize bytes. */
static int recv_start(lua_State *L, int from) {
  LSocket *s = sock_checkopen(L, 1);
  lua_Integer size = luaL_checkinteger(L, 2);
  luaL_argcheck(L, size >= 0, 2, "negative buffer size");
  int flags = aux_optflags(L, 3);
  if (size == 0 && !from) {   /* as Python: nothing asked, nothing to wait for */
    lua_pushliteral(L, "");
    return 1;
  }
  Op op;
  sock_opinit(&op, s, WAIT_READ, flags, from ? recvfrom_try : recv_try,
          from ? wait_pushresults : wait_pushresults);
  op.size = (size_t)size;
  return wait_op(L, &op);
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

enum { SEND_ALL = 1 << 30 };   /* op->flags: sendall (no MSG_* flag uses bit 30) */

/* One sendto of the data not sent yet (op->data, op->size, op->done), to
** the address op->obj (sendto) or the peer (NULL).  send: pushes the
** count; sendall: goes on until all is sent, then pushes true. */
static int send_try(lua_State *L, Op *op) {
  const SockAddr *a = (const SockAddr *)op->obj;
  int flags = (op->flags & ~SEND_ALL) | MSG_NOSIGNAL;   /* EPIPE, never SIGPIPE */
  ssize_t n = sendto(sock_ofop(op)->w.fd, (const char *)op->data + op->done,
                     op->size - op->done, flags,
                     a ? (const struct sockaddr *)&a->ss : NULL, a ? a->len : 0);
  if (n < 0) return errno;
  op->done += (size_t)n;
  if (!(op->flags & SEND_ALL)) lua_pushinteger(L, n);
  else if (op->done < op->size) return OP_AGAIN;   /* the rest: EAGAIN if it is full */
  else lua_pushboolean(L, 1);
  return 0;
}

/* send and sendto push the count, sendall true; a failure of sendall
** also reports how many bytes went (nil, msg, errno, bytes sent). */
static int send_push(lua_State *L, Op *op, int err, int nres) {
  if (err == 0) return nres;
  err_push(L, err);
  if (!(op->flags & SEND_ALL)) return 3;
  lua_pushinteger(L, (lua_Integer)op->done);
  return 4;
}

/* The record of a send of the size bytes at data, which live in the
** value at index 2 (a string or a buffer), with flags. */
static void send_op(Op *op, LSocket *s, int flags, const char *data, size_t size) {
  sock_opinit(op, s, WAIT_WRITE, flags, send_try, send_push);
  op->data = data;
  op->size = size;
  op->anchor[1] = 2;
}

/* send and sendall: the record of one send, or of a send of all, of a
** string or a buffer's range (buffer_checkbytes). */
static int send_start(lua_State *L, int all) {
  LSocket *s = sock_checkopen(L, 1);
  size_t len;
  int next;
  const char *p = buffer_checkbytes(L, 2, &len, &next);
  Op op;
  send_op(&op, s, aux_optflags(L, next), p, len);
  if (all) op.flags |= SEND_ALL;
  return wait_op(L, &op);
}

/* s:send(data [, flags]) or s:send(buffer [, i [, j [, flags]]]) -> bytes sent */
static int sock_send(lua_State *L) {
  return send_start(L, 0);
}

/* s:sendall(data [, flags]) or s:sendall(buffer [, i [, j [, flags]]]) ->
** true, or nil, msg, errno, bytes_sent */
static int sock_sendall(lua_State *L) {
  return send_start(L, 1);
}

/* s:sendto(data [, flags], address) -> bytes sent.  With two arguments
** the second is the address.  Everything is checked before a name in the
** address is looked up.  The address's block is the second anchor and
** keeps the data alive. */
static int sock_sendto(lua_State *L) {
  int addr_idx = lua_gettop(L) >= 4 ? 4 : 3;
  LSocket *s = sock_checkopen(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  luaL_checkany(L, addr_idx);
  lua_settop(L, addr_idx + 1);   /* a port after a host string, or nil */
  Op op;
  send_op(&op, s, addr_idx == 4 ? aux_optflags(L, 3) : 0, data, len);
  SockAddr *a = sockaddr_push(L, &op, 1);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);   /* the block keeps the data alive */
  return resolve_run(L, addr_idx, s->family, &a->ss, &a->len, &op);
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

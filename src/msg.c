/*
** msg.c - sendmsg and recvmsg with ancillary data, and descriptor passing
** over AF_UNIX (socket.send_fds, socket.recv_fds), as Python's.
**
** The struct msghdr of a call lives in a userdata (the state block), with
** the iovecs, the control buffer, the address and (for recvmsg) the data
** buffer right behind it: userdata never move, so its pointers stay valid
** while a task waits.  The block is the object of the call's Op (wait.h),
** which the retry driver tries, waits on and resumes.
** Sends use MSG_NOSIGNAL; receives MSG_CMSG_CLOEXEC, so passed
** descriptors arrive close-on-exec.  MSG_TRUNC and MSG_CTRUNC come back
** in the flags, so a datagram or a control message is never cut silently.
*/
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include "addr.h"
#include "base/aux.h"
#include "core/loop.h"
#include "core/wait.h"
#include "socket.h"

/* Stack slots of every call here, after lua_settop(L, 5). */
enum { SOCK = 1, STATE = 6, KEEP = 7 };

/* What recvmsg_once pushes: Python's recvmsg results, or recv_fds'. */
enum { AS_RECVMSG = 0, AS_RECVFDS = 1 };

/* Header of the STATE userdata; the buffers follow it. */
typedef struct MsgState {
  struct msghdr m;
  struct sockaddr_storage addr;
  size_t datalen, ctllen;     /* capacities, restored before each recvmsg */
  int flags;                  /* flags of the syscall */
  int hidden;                 /* flags we added, masked from msg_flags */
} MsgState;

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

/* Push the STATE userdata with room for niov iovecs, ctllen bytes of
** control data and datalen bytes of data, and point m at them. */
static MsgState *state_push(lua_State *L, size_t niov, size_t ctllen, size_t datalen) {
  size_t iovat = ALIGN8(sizeof(MsgState));
  size_t ctlat = ALIGN8(iovat + niov * sizeof(struct iovec));
  char *p = (char *)lua_newuserdatauv(L, ctlat + ALIGN8(ctllen) + datalen, 1);
  MsgState *st = (MsgState *)p;
  memset(st, 0, ctlat + ALIGN8(ctllen));
  st->m.msg_iov = (struct iovec *)(p + iovat);
  st->m.msg_iovlen = niov;
  st->m.msg_control = ctllen > 0 ? p + ctlat : NULL;
  st->m.msg_controllen = ctllen;
  st->ctllen = ctllen;
  st->datalen = datalen;
  if (datalen > 0) st->m.msg_iov[0].iov_base = p + ctlat + ALIGN8(ctllen);
  return st;
}

/* ---- sendmsg -------------------------------------------------------- */

/* Number of buffers at arg: a list of strings, or one string. */
static size_t buffers_count(lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TSTRING) return 1;
  luaL_argexpected(L, lua_istable(L, arg), arg, "list of strings");
  lua_Integer n = luaL_len(L, arg);
  luaL_argcheck(L, n >= 0 && n <= INT_MAX, arg, "too many buffers");
  return (size_t)n;
}

/* Point the iovecs at the buffers at arg, each string also stored in the
** KEEP table, the STATE block's user value, so that it stays alive while
** the call waits. */
static void fill_iov(lua_State *L, MsgState *st, int arg) {
  for (size_t i = 0; i < st->m.msg_iovlen; i++) {
    if (lua_type(L, arg) == LUA_TSTRING) lua_pushvalue(L, arg);
    else lua_geti(L, arg, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "bad argument #1 to 'sendmsg' (buffer #%d is not a string)", (int)i + 1);
    st->m.msg_iov[i].iov_base = (void *)lua_tolstring(L, -1, &st->m.msg_iov[i].iov_len);
    lua_rawseti(L, KEEP, (lua_Integer)i + 1);
  }
}

/* Whether the value on top is an integer that fits a C int. */
static int top_isint(lua_State *L) {
  lua_Integer v = lua_tointeger(L, -1);
  return lua_isinteger(L, -1) && v >= INT_MIN && v <= INT_MAX;
}

/* Replace the ancillary list at arg (nil: none) by our own copy: a plain
** list of level, type, data triples read once, with raw access (no
** __index or __len runs), checked here.  anc_space and fill_anc read
** only this copy, which no script can reach: the buffer is sized and
** filled from the same values. */
static void anc_copy(lua_State *L, int arg) {
  if (lua_isnil(L, arg)) return;
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, arg);
  luaL_argcheck(L, n <= INT_MAX / 3, arg, "too many ancillary items");
  lua_createtable(L, (int)(3 * n), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, arg, i) != LUA_TTABLE)
      luaL_error(L, "bad argument #2 to 'sendmsg' (ancillary item #%d is not a table)", (int)i);
    for (int f = 1; f <= 3; f++) {
      int t = lua_rawgeti(L, -1, f);
      if (f < 3 ? !top_isint(L) : t != LUA_TSTRING)
        luaL_error(L, "bad argument #2 to 'sendmsg' (ancillary item #%d must be {level, type, data})", (int)i);
      lua_rawseti(L, -3, 3 * (i - 1) + f);
    }
    lua_pop(L, 1);
  }
  lua_replace(L, arg);
}

/* Bytes of control buffer the copied ancillary list at arg needs. */
static size_t anc_space(lua_State *L, int arg) {
  if (lua_isnil(L, arg)) return 0;
  size_t space = 0;
  for (lua_Integer i = 3, n = (lua_Integer)lua_rawlen(L, arg); i <= n; i += 3) {
    lua_rawgeti(L, arg, i);
    size_t len = lua_rawlen(L, -1);
    lua_pop(L, 1);
    luaL_argcheck(L, len <= INT_MAX / 2 && space <= INT_MAX / 2, arg, "ancillary data too large");
    space += CMSG_SPACE(len);
  }
  return space;
}

/* Copy the copied ancillary list at arg into the control buffer, sized by
** anc_space from the same values (the bound is checked all the same). */
static void fill_anc(lua_State *L, MsgState *st, int arg) {
  if (st->ctllen == 0) return;
  char *end = (char *)st->m.msg_control + st->ctllen;
  struct cmsghdr *c = CMSG_FIRSTHDR(&st->m);
  for (lua_Integer i = 1, n = (lua_Integer)lua_rawlen(L, arg); i + 2 <= n; i += 3) {
    lua_rawgeti(L, arg, i);
    lua_rawgeti(L, arg, i + 1);
    lua_rawgeti(L, arg, i + 2);
    size_t len = lua_rawlen(L, -1);
    if (c == NULL || (char *)c + CMSG_SPACE(len) > end || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "ancillary data changed while sending");
    c->cmsg_level = (int)lua_tointeger(L, -3);
    c->cmsg_type = (int)lua_tointeger(L, -2);
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), lua_tostring(L, -1), len);
    lua_pop(L, 3);
    c = CMSG_NXTHDR(&st->m, c);
  }
}

/* One sendmsg of the message in the state block: pushes the count. */
static int sendmsg_try(lua_State *L, Op *op) {
  MsgState *st = (MsgState *)op->obj;
  ssize_t n = sendmsg(sock_ofop(op)->w.fd, &st->m, st->flags);
  if (n < 0) return errno;
  lua_pushinteger(L, n);
  return 0;
}

/* sock:sendmsg(buffers [, ancdata [, flags [, address]]]) -> bytes sent.
** buffers: a list of strings (or one string); ancdata: a list of
** {level, type, data}; address for an unconnected datagram socket.  The
** message is built before a name in the address is looked up (off the
** loop thread inside a task), which then fills in its address. */
static int sock_sendmsg(lua_State *L) {
  LSocket *s = sock_checkopen(L, SOCK);
  lua_settop(L, 5);
  int flags = aux_optflags(L, 4);
  size_t niov = buffers_count(L, 2);
  anc_copy(L, 3);
  MsgState *st = state_push(L, niov, anc_space(L, 3), 0);   /* STATE */
  lua_createtable(L, (int)niov, 0);                          /* KEEP */
  lua_pushvalue(L, KEEP);
  lua_setiuservalue(L, STATE, 1);
  fill_iov(L, st, 2);
  fill_anc(L, st, 3);
  st->flags = flags | MSG_NOSIGNAL;
  Op op;
  sock_opinit(&op, s, WAIT_WRITE, flags, sendmsg_try, wait_pushresults);
  op.obj = st;
  op.anchor[1] = STATE;
  if (lua_isnil(L, 5)) return wait_op(L, &op);
  st->m.msg_name = &st->addr;
  return resolve_run(L, 5, s->family, &st->addr, &st->m.msg_namelen, &op);
}

/* ---- recvmsg -------------------------------------------------------- */

/* Length of the data of control message c, clipped to the buffer (a
** message cut by MSG_CTRUNC may claim more than arrived). */
static size_t cmsg_datalen(const struct msghdr *m, const struct cmsghdr *c) {
  const char *end = (const char *)m->msg_control + m->msg_controllen;
  const char *data = (const char *)CMSG_DATA(c);
  size_t len = c->cmsg_len - CMSG_LEN(0);
  if (data > end) return 0;
  return len < (size_t)(end - data) ? len : (size_t)(end - data);
}

/* Push the ancillary list {{level, type, data}, ...} of m. */
static void push_anc(lua_State *L, struct msghdr *m) {
  lua_newtable(L);
  int k = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
    lua_createtable(L, 3, 0);
    lua_pushinteger(L, c->cmsg_level);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, c->cmsg_type);
    lua_rawseti(L, -2, 2);
    lua_pushlstring(L, (const char *)CMSG_DATA(c), cmsg_datalen(m, c));
    lua_rawseti(L, -2, 3);
    lua_rawseti(L, -2, ++k);
  }
}

/* How many descriptors control message c of m carries (0 unless it is
** SCM_RIGHTS), and the ith of them. */
static size_t rights_count(const struct msghdr *m, const struct cmsghdr *c) {
  if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return 0;
  return cmsg_datalen(m, c) / sizeof(int);
}

static int rights_fd(const struct cmsghdr *c, size_t i) {
  int fd;
  memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);   /* may be unaligned */
  return fd;
}

/* Push the list of descriptors of the SCM_RIGHTS messages of m. */
static void push_fds(lua_State *L, struct msghdr *m) {
  lua_newtable(L);
  int k = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
    for (size_t i = 0; i < rights_count(m, c); i++) {
      lua_pushinteger(L, rights_fd(c, i));
      lua_rawseti(L, -2, ++k);
    }
  }
}

/* Close the descriptors of the SCM_RIGHTS messages of m. */
static void close_fds(struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c))
    for (size_t i = 0; i < rights_count(m, c); i++) close(rights_fd(c, i));
}

/* What push_received passes to its protected part. */
typedef struct Received {
  LSocket *s;
  MsgState *st;
  size_t n;
  int as;
} Received;

static int push_received_p(lua_State *L) {
  const Received *r = (const Received *)lua_touserdata(L, 1);
  MsgState *st = r->st;
  lua_pushlstring(L, st->m.msg_iov[0].iov_base, r->n < st->datalen ? r->n : st->datalen);
  if (r->as == AS_RECVFDS) push_fds(L, &st->m);
  else push_anc(L, &st->m);
  lua_pushinteger(L, st->m.msg_flags & ~st->hidden);
  if (st->m.msg_namelen == 0 && r->s->family == AF_UNIX) lua_pushliteral(L, "");
  else addr_push(L, (struct sockaddr *)&st->addr, st->m.msg_namelen);
  return 4;
}

/* Push the results of a recvmsg on s that returned n: data, ancdata (or
** the list of fds), msg_flags, address (nil when the kernel gave none, ""
** for an unnamed unix peer, as recvfrom).  The descriptors received are
** the script's only once pushed: when memory runs out on the way, they
** are closed and the error raised. */
static void push_received(lua_State *L, LSocket *s, MsgState *st, size_t n, int as) {
  Received r = { s, st, n, as };
  lua_pushcfunction(L, push_received_p);
  lua_pushlightuserdata(L, &r);
  if (lua_pcall(L, 1, 4, 0) != LUA_OK) {
    close_fds(&st->m);
    lua_error(L);
  }
}

/* One recvmsg into the state block, whose capacities are restored first:
** pushes the results as recvmsg or recv_fds (as). */
static int recvmsg_once(lua_State *L, Op *op, int as) {
  MsgState *st = (MsgState *)op->obj;
  st->m.msg_name = &st->addr;
  st->m.msg_namelen = sizeof st->addr;
  st->m.msg_controllen = st->ctllen;
  st->m.msg_iov[0].iov_len = st->datalen;
  ssize_t n = recvmsg(sock_ofop(op)->w.fd, &st->m, st->flags);
  if (n < 0) return errno;
  push_received(L, sock_ofop(op), st, (size_t)n, as);
  return 0;
}

static int recvmsg_try(lua_State *L, Op *op) {
  return recvmsg_once(L, op, AS_RECVMSG);
}

static int recvfds_try(lua_State *L, Op *op) {
  return recvmsg_once(L, op, AS_RECVFDS);
}

/* Common start of recvmsg and recv_fds: the state block, then the Op. */
static int recv_begin(lua_State *L, LSocket *s, size_t bufsize, size_t ancsize,
                      int flags, int as) {
  lua_settop(L, 5);
  MsgState *st = state_push(L, 1, ancsize, bufsize);   /* STATE */
  st->flags = flags | MSG_CMSG_CLOEXEC;
  st->hidden = MSG_CMSG_CLOEXEC & ~flags;   /* Linux echoes it in msg_flags */
  Op op;
  sock_opinit(&op, s, WAIT_READ, flags, as == AS_RECVFDS ? recvfds_try : recvmsg_try,
              wait_pushresults);
  op.obj = st;
  op.anchor[1] = STATE;
  return wait_op(L, &op);
}

/* sock:recvmsg(bufsize [, ancbufsize [, flags]]) -> data, ancdata,
** msg_flags, address. */
static int sock_recvmsg(lua_State *L) {
  LSocket *s = sock_checkopen(L, SOCK);
  size_t bufsize = (size_t)aux_checkint(L, 2, 0, INT_MAX);
  size_t ancsize = (size_t)aux_optint(L, 3, 0, 0, INT_MAX);
  return recv_begin(L, s, bufsize, ancsize, aux_optflags(L, 4), AS_RECVMSG);
}

/* ---- descriptor passing --------------------------------------------- */

/* Pack the descriptors of the list at arg (integers or open sockets) as
** the data of an SCM_RIGHTS message; pushes it and returns its count. */
static lua_Integer pack_fds(lua_State *L, int arg) {
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_Integer n = luaL_len(L, arg);
  luaL_argcheck(L, n >= 0 && n <= 253, arg, "too many descriptors (SCM_MAX_FD is 253)");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, arg, i);
    LSocket *s = sock_test(L, -1);
    lua_Integer fd = s != NULL ? s->w.fd : lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
    luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, arg, "descriptors must be open sockets or integers >= 0");
    lua_pop(L, 1);
    int v = (int)fd;
    luaL_addlstring(&b, (const char *)&v, sizeof v);
  }
  luaL_pushresult(&b);
  return n;
}

/* socket.send_fds(sock, data, fds [, address]) -> bytes sent: sendmsg of
** data with one SCM_RIGHTS message carrying fds. */
static int lsock_send_fds(lua_State *L) {
  sock_checkopen(L, 1);
  lua_settop(L, 4);
  if (pack_fds(L, 3) > 0) {            /* 5: the packed fds */
    lua_createtable(L, 1, 0);
    lua_createtable(L, 3, 0);
    lua_pushinteger(L, SOL_SOCKET);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, SCM_RIGHTS);
    lua_rawseti(L, -2, 2);
    lua_pushvalue(L, 5);
    lua_rawseti(L, -2, 3);
    lua_rawseti(L, -2, 1);
  } else {
    lua_pushnil(L);                    /* no descriptors: no message */
  }
  lua_replace(L, 3);                   /* ancdata */
  lua_pushnil(L);
  lua_insert(L, 4);                    /* flags; the address moves to 5 */
  lua_settop(L, 5);
  return sock_sendmsg(L);
}

/* socket.recv_fds(sock, bufsize, maxfds [, flags]) -> data, fds,
** msg_flags, address; fds is a list of integers (close-on-exec). */
static int lsock_recv_fds(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  size_t bufsize = (size_t)aux_checkint(L, 2, 0, INT_MAX);
  lua_Integer maxfds = luaL_checkinteger(L, 3);
  luaL_argcheck(L, maxfds >= 0 && maxfds <= 253, 3, "maxfds out of range (0..253)");
  size_t ancsize = maxfds > 0 ? CMSG_SPACE((size_t)maxfds * sizeof(int)) : 0;
  return recv_begin(L, s, bufsize, ancsize, aux_optflags(L, 4), AS_RECVFDS);
}

/* socket.CMSG_LEN(n), socket.CMSG_SPACE(n): sizes for ancbufsize, as
** Python's (CMSG_SPACE(n * 4) holds n descriptors). */
static int cmsg_size(lua_State *L, int space) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= INT_MAX / 2, 1, "length out of range");
  lua_pushinteger(L, (lua_Integer)(space ? CMSG_SPACE((size_t)n) : CMSG_LEN((size_t)n)));
  return 1;
}

static int lsock_CMSG_LEN(lua_State *L) {
  return cmsg_size(L, 0);
}

static int lsock_CMSG_SPACE(lua_State *L) {
  return cmsg_size(L, 1);
}

const luaL_Reg msg_methods[] = {
  {"sendmsg", sock_sendmsg},
  {"recvmsg", sock_recvmsg},
  {NULL, NULL}
};

const luaL_Reg msg_funcs[] = {
  {"send_fds", lsock_send_fds},
  {"recv_fds", lsock_recv_fds},
  {"CMSG_LEN", lsock_CMSG_LEN},
  {"CMSG_SPACE", lsock_CMSG_SPACE},
  {NULL, NULL}
};

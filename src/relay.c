/*
** relay.c - socket.relay(a, b [, timeout]): move bytes both ways between
** two stream sockets inside C until both streams end, for proxies.
**
** Each direction (a leg) moves its bytes with splice(2) through a pipe of
** its own (socket -> pipe -> socket, never through user memory), or, when
** a side is a TLS socket or splice refuses the sockets, by a copy loop
** through a buffer (recv then send, or their TLS equivalents).  When a
** leg's source ends its stream, the leg passes the end on with
** shutdown(SHUT_WR) (plain sockets; TLS has no half-close to give) once
** all its bytes went, and the other leg goes on until its source ends too.
**
** The relay waits as select does: both sockets are in an epoll set of its
** own (edge-triggered, both directions), the driver waits on that one
** descriptor, and a try moves bytes until no leg can move any.  A close
** listener wakes it when either socket is closed meanwhile.  The pipes,
** the epoll set and the copy buffers belong to a block whose __gc frees
** them if the call never ends (a cancelled task); the call's end frees
** them at once.
*/
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/aux.h"
#include "core/loop.h"
#include "core/wait.h"
#include "socket.h"

#define LSOCK_RELAY "luasock.relay"

/* Bytes one copy moves at most. */
#define RELAY_CHUNK 65536
/* The pipe size asked for: fewer splices per byte than the default 64 KiB
** (a pipe cannot hold more than pipe-max-size; a refusal keeps 64 KiB). */
#ifndef RELAY_PIPE
#define RELAY_PIPE (256 * 1024)
#endif

/* One direction: from -> to. */
typedef struct Leg {
  LSocket *from, *to;
  int pipe[2];          /* splice's pipe (-1: none yet, or copying) */
  char *buf;            /* the copy loop's buffer (NULL: splicing) */
  size_t pending, off;  /* bytes read and not sent yet (in the pipe or buf at off) */
  lua_Integer moved;    /* bytes sent on */
  unsigned char eof;    /* from's stream ended */
  unsigned char done;   /* and its end was passed on */
} Leg;

typedef struct Relay {
  Watch w;              /* the epoll set the driver waits on */
  Listener closer;      /* listening while the call runs */
  Leg leg[2];           /* a -> b, b -> a */
} Relay;

static void leg_release(Leg *g) {
  for (int i = 0; i < 2; i++) {
    if (g->pipe[i] >= 0) close(g->pipe[i]);
    g->pipe[i] = -1;
  }
  free(g->buf);
  g->buf = NULL;
}

/* Free everything the relay made; idempotent, never raises. */
static void relay_release(lua_State *L, Relay *r) {
  loop_unlisten(&r->closer);
  leg_release(&r->leg[0]);
  leg_release(&r->leg[1]);
  loop_closewatch(L, &r->w);
}

static int relay_gc(lua_State *L) {
  relay_release(L, (Relay *)luaL_checkudata(L, 1, LSOCK_RELAY));
  return 0;
}

/* A socket is closing: if it is one of ours, wake the relay (its try then
** sees the closed socket). */
static void relay_closing(Listener *l, const Watch *w) {
  Relay *r = (Relay *)((char *)l - offsetof(Relay, closer));
  if (w == &r->leg[0].from->w || w == &r->leg[1].from->w) loop_wake(&r->w);
}

/* ---- moving bytes ------------------------------------------------------ */

/* Give the leg a pipe (splicing), or a buffer when a side is TLS or
** splice refused: 0 or an errno. */
static int leg_setup(Leg *g, int copy) {
  if (!copy && !g->from->tls && !g->to->tls) {
    if (pipe2(g->pipe, O_NONBLOCK | O_CLOEXEC) == 0) {
      fcntl(g->pipe[1], F_SETPIPE_SZ, RELAY_PIPE);
      return 0;
    }
    g->pipe[0] = g->pipe[1] = -1;
    return errno;
  }
  g->buf = malloc(RELAY_CHUNK);
  return g->buf ? 0 : ENOMEM;
}

/* The result of a syscall that moved n bytes (or failed: -1 and errno):
** 0 with *moved set, or the errno. */
static int syscall_result(ssize_t n, size_t *moved) {
  if (n < 0) return errno;
  *moved = (size_t)n;
  return 0;
}

/* Read into the leg: 0 with *n bytes now pending (0: the end of the
** stream), or an errno, EAGAIN or OP_WANT* (wait), or a TLS error. */
static int leg_read(lua_State *L, Leg *g, size_t *n) {
  if (g->buf == NULL)
    return syscall_result(splice(g->from->w.fd, NULL, g->pipe[1], NULL, RELAY_PIPE,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK), n);
  if (g->from->tls) return tls_streamrecv(L, g->from, g->buf, RELAY_CHUNK, n);
  return syscall_result(recv(g->from->w.fd, g->buf, RELAY_CHUNK, 0), n);
}

/* Send what is pending: 0 with *n bytes sent, or an error as leg_read. */
static int leg_write(lua_State *L, Leg *g, size_t *n) {
  if (g->buf == NULL)
    return syscall_result(splice(g->pipe[0], NULL, g->to->w.fd, NULL, g->pending,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK), n);
  if (g->to->tls) return tls_streamsend(L, g->to, g->buf + g->off, g->pending, n);
  return syscall_result(send(g->to->w.fd, g->buf + g->off, g->pending, MSG_NOSIGNAL), n);
}

/* Whether an error only means "wait" (the epoll set covers every
** direction of both sockets, so which one does not matter).  An
** interrupted syscall is none: it ends the try, and the driver's policy
** for it applies (wait_again). */
static int would_block(int err) {
  return err == EAGAIN || err == OP_WANTREAD || err == OP_WANTWRITE;
}

/* Move what the leg can without waiting; *moved is set when it made
** progress.  Returns 0, or the error that ends the relay. */
static int leg_step(lua_State *L, Leg *g, int *moved) {
  while (!g->done) {
    size_t n = 0;
    int err;
    if (g->pending > 0) {
      err = leg_write(L, g, &n);
      if (err) return would_block(err) ? 0 : err;
      g->pending -= n;
      g->off = g->pending ? g->off + n : 0;
      g->moved += (lua_Integer)n;
    } else if (g->eof) {
      if (!g->to->tls && shutdown(g->to->w.fd, SHUT_WR) != 0 && errno != ENOTCONN)
        return errno;
      g->done = 1;
    } else {
      err = leg_read(L, g, &n);
      if (err == EINVAL && g->buf == NULL && g->moved == 0) {   /* splice refused */
        leg_release(g);
        err = leg_setup(g, 1);
        if (err) return err;
        continue;
      }
      if (err) return would_block(err) ? 0 : err;
      g->eof = n == 0;
      g->pending = n;
    }
    *moved = 1;
  }
  return 0;
}

/* Push the counts each way. */
static void push_counts(lua_State *L, const Relay *r) {
  lua_pushinteger(L, r->leg[0].moved);
  lua_pushinteger(L, r->leg[1].moved);
}

/* Move bytes until no leg can; done when both legs are.  The epoll set's
** events are read first (and dropped: every leg is tried), so that any
** readiness after them makes a new edge for the driver's wait. */
static int relay_try(lua_State *L, Op *op) {
  Relay *r = (Relay *)op->obj;
  if (r->leg[0].from->w.fd < 0 || r->leg[1].from->w.fd < 0) return LSOCK_ECLOSED;
  struct epoll_event ev[4];
  while (epoll_wait(r->w.fd, ev, 4, 0) == 4) {}
  int moved;
  do {
    moved = 0;
    for (int i = 0; i < 2; i++) {
      int err = leg_step(L, &r->leg[i], &moved);
      if (err) return err;
    }
  } while (moved && !(r->leg[0].done && r->leg[1].done));
  if (!(r->leg[0].done && r->leg[1].done)) return OP_WANTREAD;
  push_counts(L, r);
  return 0;
}

/* The end: everything made is freed now; a failure also reports the
** counts each way (nil, msg, errno, a_to_b, b_to_a). */
static int relay_push(lua_State *L, Op *op, int err, int nres) {
  Relay *r = (Relay *)op->obj;
  relay_release(L, r);
  if (err == 0) return nres;
  err_push(L, err);
  push_counts(L, r);
  return 5;
}

/* ---- the call ----------------------------------------------------------- */

/* An open stream socket at idx. */
static LSocket *check_stream(lua_State *L, int idx) {
  LSocket *s = sock_checkopen(L, idx);
  if (s->type != SOCK_STREAM) luaL_argerror(L, idx, "stream socket expected");
  return s;
}

/* Push the relay's block (closed: nothing made yet), its user values the
** two sockets, which it keeps alive. */
static Relay *relay_push_block(lua_State *L, LSocket *a, LSocket *b) {
  Relay *r = (Relay *)lua_newuserdatauv(L, sizeof *r, 2);
  memset(r, 0, sizeof *r);
  r->w.fd = -1;
  r->closer.closing = relay_closing;
  for (int i = 0; i < 2; i++) {
    r->leg[i].from = i == 0 ? a : b;
    r->leg[i].to = i == 0 ? b : a;
    r->leg[i].pipe[0] = r->leg[i].pipe[1] = -1;
    lua_pushvalue(L, i + 1);
    lua_setiuservalue(L, -2, i + 1);
  }
  if (luaL_newmetatable(L, LSOCK_RELAY)) {
    lua_pushcfunction(L, relay_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return r;
}

/* Make the pipes (or buffers) and the epoll set: 0 or an errno. */
static int relay_arm(lua_State *L, Relay *r) {
  for (int i = 0; i < 2; i++) {
    int err = leg_setup(&r->leg[i], 0);
    if (err) return err;
  }
  r->w.fd = epoll_create1(EPOLL_CLOEXEC);
  if (r->w.fd < 0) return errno;
  for (int i = 0; i < 2; i++) {
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
    if (epoll_ctl(r->w.fd, EPOLL_CTL_ADD, r->leg[i].from->w.fd, &ev) != 0) return errno;
  }
  loop_listen(L, &r->closer);
  return 0;
}

/* socket.relay(a, b [, timeout]) -> bytes a to b, bytes b to a, once both
** streams ended; or nil, msg, errno, a_to_b, b_to_a.  timeout bounds the
** whole call (nil: none; the sockets' own timeouts do not apply). */
static int lsock_relay(lua_State *L) {
  LSocket *a = check_stream(L, 1), *b = check_stream(L, 2);
  luaL_argcheck(L, a->w.fd != b->w.fd, 2, "relay of a socket to itself");
  double timeout = aux_checktimeout(L, 3, 1, "timeout");
  lua_settop(L, 2);
  Relay *r = relay_push_block(L, a, b);   /* at 3 */
  Op op;
  wait_opinit(&op, relay_try, relay_push, &r->w, WAIT_READ, timeout);
  op.obj = r;
  op.anchor[0] = 3;
  int err = relay_arm(L, r);
  if (err) return relay_push(L, &op, err, 0);
  return wait_op(L, &op);
}

const luaL_Reg relay_funcs[] = {
  {"relay", lsock_relay},
  {NULL, NULL}
};

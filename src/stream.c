/*
** stream.c - the buffered stream that sock:makefile() returns: the object,
** its buffers and the socket side.
**
** A stream reads and writes like a Lua file (read with "l" "L" "a" "n"
** and byte counts, lines, write, flush, setvbuf, close) over a socket,
** with both buffers in C.  Input sits in one buffer that grows only when
** a single read call needs more than it holds (a long line, a large
** count, "a") and goes back to its resting size once drained; each result
** is pushed with one lua_pushlstring straight from it, so no byte is
** copied twice however long the line.
**
** The stream is split along a layer.  This file
** is the layer below the calls: the object (makefile, the metatable,
** checks, close, __gc, setvbuf, __tostring), buffer memory, and the
** socket side, the only syscalls (recv into the input, send from the
** output, the one wait).  The read and write calls, with the read
** formats, are in stream_io.c; stream.h is what the two files share.
**
** Closing a stream wakes the tasks parked on its socket (loop_wake), and
** a wait outside any task lets the tasks run: so every try of a call
** (wait.h) checks first that its stream is still open (stream_fd).
**
** Left out: seek and encodings.
*/
#include <errno.h>
#include <string.h>

#include "stream.h"
#include "base/errors.h"
#include "base/aux.h"
#include "core/loop.h"
#include "core/wait.h"
#include "socket.h"

/* ---- memory and checks --------------------------------------------- */

/* Resize a buffer with the state's allocator; raises on failure (the
** stream is left as it was). */
char *stream_bufresize(lua_State *L, char *p, size_t old, size_t size) {
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  char *q = (char *)alloc(ud, p, old, size);
  if (q == NULL && size > 0) luaL_error(L, "not enough memory");
  return q;
}

/* The stream at idx.  Methods carry the metatable as upvalue 1, so the
** check is one comparison (luaL_checkudata finds the metatable by name,
** a strcmp on every call).  Continuations use lua_touserdata. */
static LStream *stream_check(lua_State *L, int idx) {
  void *p = lua_touserdata(L, idx);
  if (p == NULL || !lua_getmetatable(L, idx) || !lua_rawequal(L, -1, lua_upvalueindex(1)))
    luaL_typeerror(L, idx, LSOCK_STREAM);
  lua_pop(L, 1);
  return (LStream *)p;
}

/* Raise unless st is open and allows need (ST_READ, ST_WRITE or 0), as
** Lua does for a closed file. */
LStream *stream_usable(lua_State *L, LStream *st, int need) {
  if (st->closed) luaL_error(L, "attempt to use a closed stream");
  if (need & ~st->flags)
    luaL_error(L, "stream not open for %s", need == ST_READ ? "reading" : "writing");
  return st;
}

LStream *stream_checkopen(lua_State *L, int idx, int need) {
  return stream_usable(L, stream_check(L, idx), need);
}

/* Free both buffers and forget the socket: the core of close and __gc. */
static void stream_release(lua_State *L, LStream *st) {
  stream_bufresize(L, st->rbuf, st->rcap, 0);
  stream_bufresize(L, st->wbuf, st->wcap, 0);
  st->rbuf = st->wbuf = NULL;
  st->rcap = st->wcap = 0;
  st->rstart = st->rend = st->rpos = st->scan = 0;
  st->wstart = st->wlen = 0;
  st->closed = 1;
  st->sock = NULL;
}

/* The socket's descriptor, -1 once the stream or the socket is closed. */
int stream_fd(const LStream *st) {
  return st->closed ? -1 : st->sock->w.fd;
}

/* ---- the socket side: the only syscalls ---------------------------- */

/* Room at the end of the input buffer when it is full: slide the unread
** input to the front, else double the buffer. */
static void rbuf_room(lua_State *L, LStream *st) {
  if (st->rend == st->rcap && st->rstart > 0) {
    size_t off = st->rstart;
    memmove(st->rbuf, st->rbuf + off, st->rend - off);
    st->rstart = 0;
    st->rpos -= off, st->scan -= off, st->rend -= off;
  } else if (st->rend == st->rcap) {
    st->rbuf = stream_bufresize(L, st->rbuf, st->rcap, st->rcap * 2);
    st->rcap *= 2;
  }
}

/* One recv at the end of the input buffer.  0 on data or end of stream
** (eof set), else an errno (EAGAIN: wait and retry). */
int stream_fill(lua_State *L, LStream *st) {
  rbuf_room(L, st);
  LSocket *s = st->sock;
  size_t want = st->rcap - st->rend;
  if (s->tls) {                        /* through TLS */
    size_t n = 0;
    int err = tls_streamrecv(L, s, st->rbuf + st->rend, want, &n);
    if (err == 0 && n == 0) st->eof = 1;
    st->rend += n;
    return err;
  }
  ssize_t n = recv(s->w.fd, st->rbuf + st->rend, want, 0);
  if (n < 0) return errno;
  wait_readgot(&s->w, (size_t)n, want);
  if (n == 0) st->eof = 1;
  st->rend += (size_t)n;
  return 0;
}

/* One send of p[0 .. len); *sent tells how much went.  0 or an errno. */
int stream_send(lua_State *L, LStream *st, const char *p, size_t len, size_t *sent) {
  if (st->sock->tls) return tls_streamsend(L, st->sock, p, len, sent);
  ssize_t n = send(st->sock->w.fd, p, len, MSG_NOSIGNAL);
  if (n < 0) return errno;
  *sent = (size_t)n;
  return 0;
}

/* Send buffered output until none is left: 0, EAGAIN or an errno. */
int stream_sendbuf(lua_State *L, LStream *st) {
  while (st->wstart < st->wlen) {
    size_t n = 0;
    int err = stream_send(L, st, st->wbuf + st->wstart, st->wlen - st->wstart, &n);
    if (err) return err;
    st->wstart += n;
  }
  st->wstart = st->wlen = 0;
  return 0;
}

/* ---- the rest of the object ---------------------------------------- */

/* Close st for good, the stream on top of the stack (popped), and wake
** every task parked on its socket (loop_wake): one in a call of this
** stream then sees it closed and returns nil, "closed"; a socket call
** there just waits again. */
static void stream_shut(lua_State *L, LStream *st) {
  Watch *w = &st->sock->w;   /* alive: the socket is our user value until below */
  stream_release(L, st);
  loop_wake(w);
  lua_pushnil(L);
  lua_setiuservalue(L, -2, 1);   /* the socket may go now */
  lua_pop(L, 1);
}

/* close's try: flush the buffered output.  When a task already waits to
** write on the socket (a writer of this stream, or a send on the socket),
** close may not wait beside it (the loop refuses two waiters): what does
** not go at once is dropped, and EAGAIN reported (op->done).  That task
** is then woken by stream_shut: a writer of this stream returns
** "closed", a send on the socket waits again. */
static int close_try(lua_State *L, Op *op) {
  LStream *st = (LStream *)op->obj;
  if (st->closed) return LSOCK_ECLOSED;   /* a task closed it while we waited */
  if (st->wstart == st->wlen) return 0;
  if (stream_fd(st) < 0) return LSOCK_ECLOSED;
  int err = stream_sendbuf(L, st);
  if (err == EAGAIN && st->sock->w.waiter[WAIT_WRITE] != NULL) {
    op->done = EAGAIN;
    return 0;
  }
  return err;
}

/* The stream is closed whatever the flush gave, as fclose does. */
static int close_push(lua_State *L, Op *op, int err, int nres) {
  (void)nres;
  LStream *st = (LStream *)op->obj;
  if (err == 0) err = (int)op->done;
  if (!st->closed) {
    wait_pushanchor(L, op, 0);
    stream_shut(L, st);
  }
  return err_pushresult(L, err);
}

/* stream:close(), __close: flush, then release the buffers; the socket
** stays open.  true, or nil, message, errno when the flush failed (the
** stream is closed anyway; EAGAIN when another task was writing, see
** close_try).  Harmless when closed. */
static int rd_close(lua_State *L) {
  LStream *st = stream_check(L, 1);
  lua_settop(L, 1);
  if (st->closed) return err_pushresult(L, 0);
  Op op;
  wait_opinit(&op, close_try, close_push, &st->sock->w, WAIT_WRITE, st->sock->timeout);
  op.obj = st;
  op.anchor[0] = 1;
  return wait_op(L, &op);
}

/* __gc: one last non-blocking try to send pending output (nobody can wait
** here), then release.  The socket is still in memory: it is our user
** value, so it is collected after us. */
static void stream_lastsend(LStream *st);

static int rd_gc(lua_State *L) {
  LStream *st = stream_check(L, 1);
  stream_lastsend(st);
  stream_release(L, st);
  return 0;
}

/* stream:setvbuf(mode [, size]): "no", "full" or "line" output buffering,
** size bytes (default 64 KiB) before a flush. */
static int rd_setvbuf(lua_State *L) {
  static const char *const modes[] = { "no", "full", "line", NULL };
  LStream *st = stream_checkopen(L, 1, 0);
  int mode = luaL_checkoption(L, 2, NULL, modes);
  lua_Integer size = luaL_optinteger(L, 3, WBUF_SIZE);
  luaL_argcheck(L, size > 0, 3, "buffer size must be positive");
  st->vbuf = mode;   /* VBUF_* follow the order of modes */
  st->wsize = (size_t)size;
  lua_pushboolean(L, 1);
  return 1;
}

/* The line limit at stack index i: a positive integer. */
static size_t check_maxline(lua_State *L, int i) {
  lua_Integer n = luaL_checkinteger(L, i);
  luaL_argcheck(L, n > 0, i, "line limit must be positive");
  return (size_t)n;
}

/* stream:setlimit(n): the longest line "l" and "L" return from now on,
** in bytes without the '\n'; a longer one gives nil, "line too long". */
static int rd_setlimit(lua_State *L) {
  LStream *st = stream_checkopen(L, 1, 0);
  st->maxline = check_maxline(L, 2);
  lua_pushboolean(L, 1);
  return 1;
}

static int rd_tostring(lua_State *L) {
  static const char *const modes[] = { "", "r", "w", "rw" };
  LStream *st = stream_check(L, 1);
  if (st->closed) lua_pushliteral(L, "stream (closed)");
  else lua_pushfstring(L, "stream (fd %d, %s)", st->sock->w.fd, modes[st->flags]);
  return 1;
}

/* The registry's table of every stream (weak keys: it holds none), for
** stream_takeover to find a socket's streams; it exists once socket.ssl
** was loaded (stream_track), so that programs without TLS pay nothing.
** One table, no entry per socket: its room is reused. */
#define STREAMS_KEY "luasock.streams"

void stream_track(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, STREAMS_KEY) == LUA_TNIL) {
    aux_pushweak(L, "k");
    lua_setfield(L, LUA_REGISTRYINDEX, STREAMS_KEY);
  }
  lua_pop(L, 1);
}

static void streams_add(lua_State *L, int stidx) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, STREAMS_KEY) == LUA_TTABLE) {
    lua_pushvalue(L, stidx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
  }
  lua_pop(L, 1);
}

/* Python's rule for modes: letters r, w, b; reading unless only "w" is
** given.  -1 for any other letter. */
static int mode_flags(const char *mode) {
  int flags = 0;
  for (; *mode; mode++) {
    if (*mode == 'r') flags |= ST_READ;
    else if (*mode == 'w') flags |= ST_WRITE;
    else if (*mode != 'b') return -1;
  }
  return flags ? flags : ST_READ;
}

/* makefile's options at stack index 3 (nil or a table): the line limit,
** the only one; an unknown name raises. */
static size_t makefile_maxline(lua_State *L) {
  if (lua_isnoneornil(L, 3)) return MAXLINE_DEFAULT;
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  for (lua_pushnil(L); lua_next(L, 3); lua_pop(L, 1)) {
    if (lua_type(L, 4) != LUA_TSTRING || strcmp(lua_tostring(L, 4), "max_line") != 0)
      luaL_argerror(L, 3, lua_pushfstring(L, "unknown option '%s'", luaL_tolstring(L, 4, NULL)));
  }
  lua_pushliteral(L, "max_line");
  if (lua_rawget(L, 3) == LUA_TNIL) return MAXLINE_DEFAULT;
  int isint;
  lua_Integer n = lua_tointegerx(L, -1, &isint);
  luaL_argcheck(L, isint && n > 0, 3, "max_line must be a positive integer");
  return (size_t)n;
}

/* A last non-blocking try to send st's pending output (nobody may wait:
** __gc, a TLS takeover); what does not go is dropped. */
static void stream_lastsend(LStream *st) {
  if (stream_fd(st) < 0 || st->sock->tls) return;   /* no plaintext past TLS */
  while (st->wstart < st->wlen) {   /* a signal, a full socket: the rest is lost */
    ssize_t n = send(st->sock->w.fd, st->wbuf + st->wstart, st->wlen - st->wstart,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) break;
    st->wstart += (size_t)n;
  }
}

const char *stream_takeover(lua_State *L, int idx, size_t *len) {
  const LSocket *sock = (const LSocket *)lua_touserdata(L, idx);
  int pieces = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, STREAMS_KEY);
  int base = lua_gettop(L);
  if (lua_type(L, base) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, base)) {          /* every stream: takeovers are rare */
      lua_pop(L, 1);
      LStream *st = (LStream *)lua_touserdata(L, -1);
      if (st->closed || st->sock != sock) continue;
      luaL_checkstack(L, 2, "too many streams");
      lua_pushlstring(L, st->rbuf + st->rstart, st->rend - st->rstart);
      lua_insert(L, -2);                 /* below the key */
      pieces++;
      stream_lastsend(st);
      stream_release(L, st);
    }
  }
  lua_concat(L, pieces);                 /* "" when none */
  lua_replace(L, base);
  return lua_tolstring(L, -1, len);
}

static const luaL_Reg rd_methods[] = {
  {"read", stream_read},
  {"lines", stream_lines},
  {"write", stream_write},
  {"flush", stream_flush},
  {"close", rd_close},
  {"setvbuf", rd_setvbuf},
  {"setlimit", rd_setlimit},
  {NULL, NULL}
};

static const luaL_Reg rd_metamethods[] = {
  {"__gc", rd_gc},
  {"__close", rd_close},
  {"__tostring", rd_tostring},
  {NULL, NULL}
};

/* Upvalue of every function: the metatable, for stream_check. */
static const AuxClass stream_class = {LSOCK_STREAM, rd_metamethods, rd_methods, 1};

/* sock:makefile([mode [, {max_line = n}]]) -> a stream over the socket,
** which it keeps alive (user value) but never closes. */
static int sock_makefile(lua_State *L) {
  LSocket *s = sock_checkopen(L, 1);
  const char *mode = luaL_optstring(L, 2, "r");
  int flags = mode_flags(mode);
  if (flags < 0)
    luaL_argerror(L, 2, lua_pushfstring(L, "invalid mode '%s' (only r, w, b allowed)", mode));
  size_t maxline = makefile_maxline(L);
  LStream *st = (LStream *)lua_newuserdatauv(L, sizeof(LStream), 1);
  memset(st, 0, sizeof *st);
  st->sock = s;
  st->flags = flags;
  st->vbuf = VBUF_FULL;
  st->wsize = WBUF_SIZE;
  st->maxline = maxline;
  aux_setclass(L, &stream_class);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  streams_add(L, lua_gettop(L));
  return 1;
}

const luaL_Reg stream_methods[] = {
  {"makefile", sock_makefile},
  {NULL, NULL}
};

/*
** stream_io.c - the read and write calls of a stream (read, lines, write,
** flush) and the read formats over its buffered input.
**
** Split from stream.c along a layer: stream.c
** keeps the object and the socket side, the only syscalls; this file only
** moves bytes between the Lua stack and the buffers, and asks stream.c to
** fill, send and wait (stream.h).
**
** Each call fills an operation record (wait.h) and returns what the retry
** driver returns: a read's try runs its formats from the start of the
** input, receiving more while it can; a write's takes its data into the
** buffer or the socket; the driver waits when they would block.
**
** A read call is all or nothing: its formats consume input through a
** cursor (rpos) that is committed only when the call succeeds, so after a
** timeout or an error the input is intact and the call can be retried.
** Every try starts the formats over from the committed input (rstart):
** nothing of a call is kept on the Lua stack across a wait; scan
** remembers how far a line search got, so a long line is searched once.
**
** Before a read waits for input, pending output is flushed: the peer may
** be waiting for it (a request written with full buffering).
**
** Naive on purpose: a format after the first that waits for more input
** is tried again from its start (a long line there is searched again at
** each try); the first format keeps its progress (scan, and the spaces
** before a number, consumed at once).
**
** Left out: two tasks reading one stream at once; that stays memory-safe
** but which call gets which bytes is then undefined, as with any shared
** stream.
*/
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "stream.h"
#include "base/errors.h"
#include "core/loop.h"
#include "core/wait.h"

#define MAXNUMERAL 200    /* longest numeral "n" reads, as liolib's L_MAXLENNUM */

/* Read formats, once checked, are integers: a byte count (>= 0) or these. */
enum { FMT_LINE = -1, FMT_LINENL = -2, FMT_ALL = -3, FMT_NUM = -4 };

/* What trying one format on the buffered input gives. */
enum { TRY_TOOLONG = -2, TRY_NEED = -1, TRY_FAIL = 0, TRY_OK = 1 };

enum { READ_ITER = 1 };    /* op->flags of a read: a lines iterator's */
enum { WRITE_FLUSH = 1 };  /* op->flags of a write: flush at the end */

/* ---- read formats over the buffered input -------------------------- */

/* Push len bytes at the cursor as a result and move past them (and past
** skip more: the '\n' that "l" drops). */
static int push_input(lua_State *L, LStream *st, size_t len, size_t skip) {
  lua_pushlstring(L, st->rbuf + st->rpos, len);
  st->rpos += len + skip;
  return TRY_OK;
}

/* "l" / "L": a line; a last line without '\n' counts, as in Lua.  A
** line longer than the stream's limit fails as soon as the limit is
** passed, so a peer that never sends '\n' cannot make the input buffer
** grow past the limit (the bytes stay for a read of counts or "a"). */
static int try_line(lua_State *L, LStream *st, int keepnl) {
  size_t end = st->rend - st->rpos > st->maxline ? st->rpos + st->maxline + 1 : st->rend;
  if (st->scan > end) return TRY_TOOLONG;   /* the limit was lowered meanwhile */
  char *nl = memchr(st->rbuf + st->scan, '\n', end - st->scan);
  if (nl != NULL) {
    size_t len = (size_t)(nl - (st->rbuf + st->rpos));
    return push_input(L, st, len + (keepnl != 0), keepnl == 0);
  }
  if (end - st->rpos > st->maxline) return TRY_TOOLONG;
  st->scan = st->rend;   /* search only the new input next time */
  if (!st->eof) return TRY_NEED;
  if (st->rpos == st->rend) return TRY_FAIL;
  return push_input(L, st, st->rend - st->rpos, 0);
}

/* A byte count: n bytes, fewer at end of stream; 0 gives "" unless at
** end of stream (liolib's test_eof). */
static int try_count(lua_State *L, LStream *st, size_t n) {
  size_t avail = st->rend - st->rpos;
  if (avail >= n && avail > 0) return push_input(L, st, n, 0);
  if (!st->eof) return TRY_NEED;
  if (avail == 0) return TRY_FAIL;
  return push_input(L, st, avail, 0);
}

/* "a": everything up to end of stream ("" if already there). */
static int try_all(lua_State *L, LStream *st) {
  if (!st->eof) return TRY_NEED;
  return push_input(L, st, st->rend - st->rpos, 0);
}

/* A numeral being read by "n": liolib's read_number over our buffer. */
typedef struct Numeral {
  const char *p, *end;   /* input not looked at yet */
  int eof;               /* nothing will follow end */
  int need;              /* looked past end before eof: retry with more input */
  int n, overflow;       /* chars in buf; more than MAXNUMERAL of them */
  char buf[MAXNUMERAL + 1];
} Numeral;

/* The next char, or EOF past the end (noting that more input may change
** the answer). */
static int num_peek(Numeral *nm) {
  if (nm->p < nm->end) return (unsigned char)*nm->p;
  if (!nm->eof) nm->need = 1;
  return EOF;
}

static int num_take(Numeral *nm) {
  if (nm->n >= MAXNUMERAL) { nm->overflow = 1; return 0; }
  nm->buf[nm->n++] = *nm->p++;
  return 1;
}

/* Take the next char if it is set[0] or set[1]. */
static int num_accept(Numeral *nm, const char *set) {
  int c = num_peek(nm);
  if (c == EOF || (c != set[0] && c != set[1])) return 0;
  return num_take(nm);
}

static int num_digits(Numeral *nm, int hex) {
  int count = 0, c;
  while ((c = num_peek(nm)) != EOF && (hex ? isxdigit(c) : isdigit(c)) && num_take(nm))
    count++;
  return count;
}

/* The grammar of liolib's read_number: sign, "0x", digits, point,
** digits, exponent. */
static void num_scan(Numeral *nm) {
  const char decp[2] = { lua_getlocaledecpoint(), '.' };
  int count = 0, hex = 0;
  num_accept(nm, "-+");
  if (num_accept(nm, "00")) {
    if (num_accept(nm, "xX")) hex = 1;
    else count = 1;   /* the '0' is a digit */
  }
  count += num_digits(nm, hex);
  if (num_accept(nm, decp)) count += num_digits(nm, hex);
  if (count > 0 && num_accept(nm, hex ? "pP" : "eE")) {
    num_accept(nm, "-+");
    num_digits(nm, 0);
  }
}

/* Drop the spaces rbuf[from .. rpos) but one for good, whatever becomes
** of the call: a try starts the formats over, and the formats before must
** see the same input (a number must end where it did, a read(0) must
** still find a byte).  The cheap way when nothing before them is
** pending, else by moving the input after them down. */
static void drop_input(LStream *st, size_t from) {
  if (st->rpos - from < 2) return;
  if (from == st->rstart) {
    st->rstart = st->rpos - 1;
    return;
  }
  from++;
  memmove(st->rbuf + from, st->rbuf + st->rpos, st->rend - st->rpos);
  st->rend -= st->rpos - from;
  st->rpos = from;
}

/* "n": a number after optional spaces; like Lua, a malformed numeral is
** consumed and fails.  The spaces are consumed even when the call fails,
** as in Lua, so that a peer sending only spaces costs no memory. */
static int try_number(lua_State *L, LStream *st) {
  size_t from = st->rpos;
  while (st->rpos < st->rend && isspace((unsigned char)st->rbuf[st->rpos])) st->rpos++;
  drop_input(st, from);
  st->scan = st->rpos;
  Numeral nm;
  nm.p = st->rbuf + st->rpos;
  nm.end = st->rbuf + st->rend;
  nm.eof = st->eof;
  nm.need = nm.n = nm.overflow = 0;
  num_scan(&nm);
  if (nm.need) return TRY_NEED;
  st->rpos += (size_t)nm.n;
  nm.buf[nm.n] = '\0';
  return !nm.overflow && lua_stringtonumber(L, nm.buf) != 0 ? TRY_OK : TRY_FAIL;
}

static int try_format(lua_State *L, LStream *st, lua_Integer fmt) {
  switch (fmt) {
    case FMT_LINE: return try_line(L, st, 0);
    case FMT_LINENL: return try_line(L, st, 1);
    case FMT_ALL: return try_all(L, st);
    case FMT_NUM: return try_number(L, st);
    default: return try_count(L, st, (size_t)fmt);
  }
}

/* The code of the read format at stack index i; raises on a bad one. */
static lua_Integer format_code(lua_State *L, int i) {
  if (lua_type(L, i) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, i);
    luaL_argcheck(L, n >= 0, i, "byte count must be non-negative");
    return n;
  }
  const char *p = luaL_checkstring(L, i);
  if (*p == '*') p++;   /* Lua 5.1 spellings: "*l", "*a" */
  switch (*p) {
    case 'l': return FMT_LINE;
    case 'L': return FMT_LINENL;
    case 'a': return FMT_ALL;
    case 'n': return FMT_NUM;
    default: return luaL_argerror(L, i, "invalid format");
  }
}

/* Replace the n formats from stack index 2 by their codes; none means "l". */
static int formats_check(lua_State *L, int n) {
  luaL_checkstack(L, n + LUA_MINSTACK, "too many arguments");
  if (n == 0) {
    lua_pushinteger(L, FMT_LINE);
    return 1;
  }
  for (int i = 2; i <= n + 1; i++) {
    lua_pushinteger(L, format_code(L, i));
    lua_replace(L, i);
  }
  return n;
}

/* ---- read calls ---------------------------------------------------- */

/* Format i of a read call's op: the one code in op->done, or op->data
** pointing at the op->size codes in a block anchored with the call. */
static lua_Integer read_format(const Op *op, size_t i) {
  return op->data ? ((const lua_Integer *)op->data)[i] : (lua_Integer)op->done;
}

/* Run the formats from the committed input, pushing one result each:
** returns how many were pushed once the call is complete (all done, or
** one failed); else, with nothing left pushed, TRY_NEED when input is
** missing or TRY_TOOLONG when a line passed the limit.  scan is kept for
** the next try only when the first format, a line, stopped: it is valid
** from rstart on. */
static int read_formats(lua_State *L, LStream *st, const Op *op) {
  int top = lua_gettop(L);
  st->rpos = st->rstart;
  for (size_t i = 0; i < op->size; i++) {
    lua_Integer fmt = read_format(op, i);
    int r = try_format(L, st, fmt);
    if (r == TRY_NEED || r == TRY_TOOLONG) {
      if (i > 0 || (fmt != FMT_LINE && fmt != FMT_LINENL)) st->scan = st->rstart;
      lua_settop(L, top);
      return r;
    }
    if (r == TRY_FAIL) luaL_pushfail(L);
    st->scan = st->rpos;
    if (r == TRY_FAIL) break;
  }
  return lua_gettop(L) - top;
}

/* Input is missing: receive some (0: try the formats again), unless the
** socket is known to be drained, or say
** what to wait for.  Pending output goes first, as the peer may be
** waiting for it, unless a task already waits to write (it will send it;
** two waiters on one direction are refused); a failure to send it is left
** for the next write or flush to report. */
static int read_more(lua_State *L, LStream *st, const Op *op) {
  int err = wait_skipread(L, op) ? EAGAIN : stream_fill(L, st);   /* the hint, wait.h */
  if (err != EAGAIN) return err;
  if (st->wstart < st->wlen) {
    err = stream_sendbuf(L, st);
    if (err == 0 || wait_again(err)) return err;   /* all sent, or interrupted: again */
    if (err == EAGAIN && st->sock->w.waiter[WAIT_WRITE] == NULL) return OP_WANTWRITE;
  }
  return OP_WANTREAD;
}

/* Success: consume the input; a drained buffer shrinks back to rest. */
static void read_commit(lua_State *L, LStream *st) {
  st->rstart = st->scan = st->rpos;
  if (st->rstart == st->rend) {
    st->rstart = st->rend = st->rpos = st->scan = 0;
    if (st->rcap > RBUF_SIZE) {
      st->rbuf = stream_bufresize(L, st->rbuf, st->rcap, RBUF_SIZE);
      st->rcap = RBUF_SIZE;
    }
  }
}

/* A read's try: the formats over the input, receiving more while the
** socket has some; pushes the results (none when a lines iterator
** reaches the end, which ends a for loop). */
static int read_try(lua_State *L, Op *op) {
  LStream *st = (LStream *)op->obj;
  for (;;) {
    if (stream_fd(st) < 0) return LSOCK_ECLOSED;
    int n = read_formats(L, st, op);
    if (n >= 0) {
      read_commit(L, st);
      if ((op->flags & READ_ITER) && lua_isnil(L, -n)) lua_pop(L, n);
      return 0;
    }
    int err = n == TRY_TOOLONG ? LSOCK_ETOOLONG : read_more(L, st, op);
    if (err) return err;
  }
}

/* Failure: nothing was committed, so the input stays for a retry; a
** lines iterator raises, as Lua's does, except for a line too long: that
** ends a for loop with nil, "line too long", so that a peer cannot make a
** server's task die. */
static int read_push(lua_State *L, Op *op, int err, int nres) {
  if (err == 0) return nres;
  if ((op->flags & READ_ITER) && err != LSOCK_ETOOLONG)
    return luaL_error(L, "%s", err_message(err));
  return err_push(L, err);
}

/* Start a read call; the stack holds the stream, then nfmt format codes.
** Several codes go into a block at index 2, anchored with the call. */
static int read_begin(lua_State *L, LStream *st, int nfmt, int iter) {
  if (st->rbuf == NULL) {
    st->rbuf = stream_bufresize(L, NULL, 0, RBUF_SIZE);
    st->rcap = RBUF_SIZE;
  }
  Op op;
  wait_opinit(&op, read_try, read_push, &st->sock->w, WAIT_READ, st->sock->timeout);
  op.obj = st;
  op.size = (size_t)nfmt;
  op.flags = iter ? READ_ITER : 0;
  op.anchor[0] = 1;
  if (nfmt == 1) {
    op.done = (size_t)lua_tointeger(L, 2);
  } else {
    lua_Integer *codes = (lua_Integer *)lua_newuserdatauv(L, (size_t)nfmt * sizeof *codes, 0);
    for (int i = 0; i < nfmt; i++) codes[i] = lua_tointeger(L, 2 + i);
    lua_insert(L, 2);
    op.data = codes;
    op.anchor[1] = 2;
  }
  if (stream_fd(st) < 0) return read_push(L, &op, LSOCK_ECLOSED, 0);
  return wait_op(L, &op);
}

/* stream:read(...) -> one value per format; nil at end of stream;
** nil, message, errno on failure, the input kept. */
int stream_read(lua_State *L) {
  LStream *st = stream_checkopen(L, 1, ST_READ);
  int nfmt = formats_check(L, lua_gettop(L) - 1);
  return read_begin(L, st, nfmt, 0);
}

/* The iterator of stream:lines(...): upvalues stream, n, n formats.  A
** call pushes the stream, n formats, their block (read_begin) and up to n
** results: 2n + 2, then room for the Lua API as usual. */
static int lines_iter(lua_State *L) {
  int n = (int)lua_tointeger(L, lua_upvalueindex(2));
  lua_settop(L, 0);
  luaL_checkstack(L, 2 * n + 2 + LUA_MINSTACK, "too many formats");
  lua_pushvalue(L, lua_upvalueindex(1));
  LStream *st = stream_usable(L, (LStream *)lua_touserdata(L, 1), ST_READ);
  for (int i = 1; i <= n; i++) lua_pushvalue(L, lua_upvalueindex(2 + i));
  return read_begin(L, st, n, 1);
}

/* stream:lines(...) -> an iterator reading the formats at each step; it
** ends at end of stream and raises on a failure. */
int stream_lines(lua_State *L) {
  stream_checkopen(L, 1, ST_READ);
  int n = lua_gettop(L) - 1;
  luaL_argcheck(L, n <= 250, 252, "too many arguments");   /* upvalues */
  n = formats_check(L, n);
  lua_pushinteger(L, n);
  lua_insert(L, 2);
  lua_pushcclosure(L, lines_iter, n + 2);
  return 1;
}

/* ---- write calls --------------------------------------------------- */

/* Room for need bytes of output: the buffer starts small and doubles,
** never past size (setvbuf's), so a large size costs only what is used. */
static void wbuf_reserve(lua_State *L, LStream *st, size_t need, size_t size) {
  if (need <= st->wcap) return;
  size_t cap = st->wcap > 0 ? st->wcap : WBUF_FIRST;
  while (cap < need) cap *= 2;
  if (cap > size) cap = size;
  st->wbuf = stream_bufresize(L, st->wbuf, st->wcap, cap);
  st->wcap = cap;
}

/* Take some of p[0 .. len) into *taken: into the buffer while it has
** room below size, else flush the buffer; straight to the socket when the
** buffer is empty and len would fill it.  0 or an errno. */
static int write_step(lua_State *L, LStream *st, const char *p, size_t len,
                      size_t size, size_t *taken) {
  *taken = 0;
  if (st->wlen == 0 && len >= size) return stream_send(L, st, p, len, taken);
  if (st->wlen >= size) return stream_sendbuf(L, st);
  size_t n = size - st->wlen < len ? size - st->wlen : len;
  wbuf_reserve(L, st, st->wlen + n, size);
  memcpy(st->wbuf + st->wlen, p, n);
  st->wlen += n;
  *taken = n;
  return 0;
}

/* A write's try: take the data not taken yet (op->data, op->size,
** op->done) into the buffer or the socket, then flush when the buffering
** asks for it; pushes the stream. */
static int write_try(lua_State *L, Op *op) {
  LStream *st = (LStream *)op->obj;
  if (stream_fd(st) < 0) return LSOCK_ECLOSED;
  size_t size = st->vbuf == VBUF_NO ? 0 : st->wsize;
  int err = 0;
  while (op->done < op->size && !err) {
    size_t taken;
    err = write_step(L, st, (const char *)op->data + op->done, op->size - op->done,
                     size, &taken);
    op->done += taken;
  }
  if (!err && (op->flags & WRITE_FLUSH)) err = stream_sendbuf(L, st);
  if (err) return err;
  wait_pushanchor(L, op, 0);
  return 0;
}

/* Failure: nil, message, errno, and how many bytes of this call were
** taken (they are in the buffer or sent), as sendall reports. */
static int write_push(lua_State *L, Op *op, int err, int nres) {
  if (err == 0) return nres;
  err_push(L, err);
  lua_pushinteger(L, (lua_Integer)op->done);
  return 4;
}

/* Check write argument i, a string or a number (made a string as
** io.write does).  Returns whether line buffering wants a flush. */
static int write_arg(lua_State *L, LStream *st, int i) {
  if (lua_type(L, i) == LUA_TNUMBER) {
    char buf[64];
    int len = lua_isinteger(L, i)
      ? snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, i))
      : snprintf(buf, sizeof buf, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(L, i));
    lua_pushlstring(L, buf, (size_t)len);
    lua_replace(L, i);
    return 0;
  }
  size_t len;
  const char *p = luaL_checklstring(L, i, &len);
  return st->vbuf == VBUF_LINE && memchr(p, '\n', len) != NULL;
}

/* stream:write(...) -> the stream; nil, message, errno, bytes taken.
** Several strings are joined first: the call works through one. */
int stream_write(lua_State *L) {
  LStream *st = stream_checkopen(L, 1, ST_WRITE);
  int top = lua_gettop(L), flush = st->vbuf == VBUF_NO;
  for (int i = 2; i <= top; i++) flush |= write_arg(L, st, i);
  lua_concat(L, top - 1);   /* none: "" */
  Op op;
  wait_opinit(&op, write_try, write_push, &st->sock->w, WAIT_WRITE, st->sock->timeout);
  op.obj = st;
  op.data = lua_tolstring(L, 2, &op.size);
  op.flags = flush ? WRITE_FLUSH : 0;
  op.anchor[0] = 1;
  op.anchor[1] = 2;
  return wait_op(L, &op);
}

/* flush's try: send the buffered output; pushes true. */
static int flush_try(lua_State *L, Op *op) {
  LStream *st = (LStream *)op->obj;
  if (stream_fd(st) < 0) return LSOCK_ECLOSED;
  int err = stream_sendbuf(L, st);
  if (err) return err;
  lua_pushboolean(L, 1);
  return 0;
}

/* stream:flush() -> true; nil, message, errno. */
int stream_flush(lua_State *L) {
  LStream *st = stream_checkopen(L, 1, 0);
  lua_settop(L, 1);
  Op op;
  wait_opinit(&op, flush_try, wait_pushresults, &st->sock->w, WAIT_WRITE, st->sock->timeout);
  op.obj = st;
  op.anchor[0] = 1;
  return wait_op(L, &op);
}

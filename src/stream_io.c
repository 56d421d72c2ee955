/*
** stream_io.c - the read and write calls of a stream (read, lines, write,
** flush) and the read formats over its buffered input.
**
** Split from reader.c along a layer (STYLE: past ~600 lines): reader.c
** keeps the object and the socket side, the only syscalls; this file only
** moves bytes between the Lua stack and the buffers, and asks reader.c to
** fill, send and wait (stream.h).
**
** A read call is all or nothing: its formats consume input through a
** cursor (rpos) that is committed only when the call succeeds, so after a
** timeout or an error the input is intact and the call can be retried.
** That also makes waiting simple: inside a task wait_fd yields, and the
** continuation scans the buffer again from the cursor (scan remembers how
** far a line search got, so a long line is searched once).
**
** Before a read waits for input, pending output is flushed: the peer may
** be waiting for it (a request written with full buffering).
**
** After every wait, in a task or not, a call checks that its stream is
** still open (stream_wait, stream_resumed) and, for a read, that its
** cursor is still its own.
**
** Left out: two tasks reading one stream at once; that stays memory-safe
** (the call that lost the cursor starts over) but which call gets which
** bytes is then undefined, as with any shared stream.
*/
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "stream.h"

#define MAXNUMERAL 200    /* longest numeral "n" reads, as liolib's L_MAXLENNUM */

/* Read formats, once checked, are integers: a byte count (>= 0) or these. */
enum { FMT_LINE = -1, FMT_LINENL = -2, FMT_ALL = -3, FMT_NUM = -4 };

/* What trying one format on the buffered input gives. */
enum { TRY_TOOLONG = -2, TRY_NEED = -1, TRY_FAIL = 0, TRY_OK = 1 };

/* Stack of a read call (also of a lines iterator call); results follow
** the formats.  R_CALL is the id of the call owning the cursor. */
enum { R_DEADLINE = 2, R_NFMT, R_ITER, R_CALL, R_FMT };

/* Stack of a write call: the next argument to take, how much of it is
** taken, whether to flush at the end, then the strings. */
enum { W_DEADLINE = 2, W_ARG, W_OFF, W_FLUSH, W_DATA };

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

/* Drop the input rbuf[from .. rpos) for good, whatever becomes of the
** call: the cheap way when nothing before it is pending, else by moving
** the input after it down. */
static void drop_input(LStream *st, size_t from) {
  size_t n = st->rpos - from;
  if (from == st->rstart) st->rstart = st->rpos;
  else {
    memmove(st->rbuf + from, st->rbuf + st->rpos, st->rend - st->rpos);
    st->rend -= n, st->rpos = from;
  }
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

static int read_k(lua_State *L, int status, lua_KContext ctx);

/* Try the formats not done yet, pushing one result each: TRY_OK once the
** call is complete (all done, or one failed), TRY_NEED when input is
** missing, TRY_TOOLONG when a line passed the limit. */
static int read_formats(lua_State *L, LStream *st) {
  int nfmt = (int)lua_tointeger(L, R_NFMT), base = R_FMT + nfmt - 1;
  for (;;) {
    int done = lua_gettop(L) - base;
    if (done == nfmt || (done > 0 && lua_isnil(L, -1))) return TRY_OK;
    int r = try_format(L, st, lua_tointeger(L, R_FMT + done));
    if (r == TRY_NEED || r == TRY_TOOLONG) return r;
    if (r == TRY_FAIL) luaL_pushfail(L);
    st->scan = st->rpos;
  }
}

/* The call starts over, owning the cursor (another call moved it). */
static void read_restart(lua_State *L, LStream *st) {
  lua_settop(L, R_FMT + (int)lua_tointeger(L, R_NFMT) - 1);
  lua_pushinteger(L, ++st->rcall);
  lua_replace(L, R_CALL);
  st->rpos = st->scan = st->rstart;
}

/* Input is missing: receive it, or wait.  After a short read left the
** socket drained, a task waits without the recv that would say EAGAIN
** (wait_idle).  Pending output goes first, as the peer may be waiting for
** it, unless a task already waits to write (it will send it; two waiters
** on one direction are refused); a failure to send it is left for the
** next write or flush to report. */
static int read_more(lua_State *L, LStream *st) {
  if (stream_fd(st) < 0) return LSOCK_ECLOSED;
  Watch *w = &st->sock->w;
  int idle = wait_idle(L, w, WAIT_READ, st->sock->timeout);   /* timeout 0 <=> deadline 0 */
  int err = idle ? EAGAIN : stream_fill(L, st), dir = WAIT_READ;
  if (err != EAGAIN) return err;
  if (st->wstart < st->wlen) {
    err = stream_sendbuf(L, st);
    if (err == 0) return 0;   /* all sent: try the input again */
    if (err == EAGAIN && w->waiter[WAIT_WRITE] == NULL) dir = WAIT_WRITE;
  }
  return stream_wait(L, st, dir, R_DEADLINE, read_k);
}

/* Success: consume the input; a drained buffer shrinks back to rest. */
static int read_done(lua_State *L, LStream *st) {
  int base = R_FMT + (int)lua_tointeger(L, R_NFMT) - 1;
  st->rstart = st->scan = st->rpos;
  if (st->rstart == st->rend) {
    st->rstart = st->rend = st->rpos = st->scan = 0;
    if (st->rcap > RBUF_SIZE) {
      st->rbuf = stream_bufresize(L, st->rbuf, st->rcap, RBUF_SIZE);
      st->rcap = RBUF_SIZE;
    }
  }
  if (lua_toboolean(L, R_ITER) && lua_isnil(L, base + 1)) return 0;  /* ends a for loop */
  return lua_gettop(L) - base;
}

/* Failure: nothing was committed, so the input stays for a retry (the
** next call starts from rstart); a lines iterator raises, as Lua's does,
** except for a line too long: that ends a for loop with nil, "line too
** long", so that a peer cannot make a server's task die. */
static int read_fail(lua_State *L, int err) {
  if (lua_toboolean(L, R_ITER) && err != LSOCK_ETOOLONG)
    return luaL_error(L, "%s", err_message(err));
  return err_push(L, err);
}

/* read_k after a yield: the slots it sizes the stack by must still fit
** the stack it left (top ctx), and another stream put in slot 1 must have
** an input buffer (a write-only one has none). */
static void read_recheck(lua_State *L, LStream *st, lua_KContext ctx) {
  lua_Integer nfmt = lua_tointeger(L, R_NFMT);
  if (!lua_isinteger(L, R_NFMT) || nfmt < 1 || nfmt > (lua_Integer)ctx - R_FMT + 1)
    wait_changed(L);
  if (!st->closed && st->rbuf == NULL) wait_changed(L);
}

/* After each wait, in a task or not (tasks run during an outside wait
** too), the call starts over if another read took the cursor meanwhile. */
static int read_k(lua_State *L, int status, lua_KContext ctx) {
  LStream *st = stream_resumedst(L, status);
  if (status != LUA_OK) read_recheck(L, st, ctx);
  int err = stream_resumed(L, st, status, ctx);
  while (!err) {
    if (st->rcall != lua_tointeger(L, R_CALL)) read_restart(L, st);
    int r = read_formats(L, st);
    if (r == TRY_OK) return read_done(L, st);
    err = r == TRY_TOOLONG ? LSOCK_ETOOLONG : read_more(L, st);
  }
  return read_fail(L, err);
}

/* Start a read call; the stack holds the stream, then nfmt format codes. */
static int read_begin(lua_State *L, LStream *st, int nfmt, int iter) {
  if (st->rbuf == NULL) {
    st->rbuf = stream_bufresize(L, NULL, 0, RBUF_SIZE);
    st->rcap = RBUF_SIZE;
  }
  lua_pushnil(L);   /* the deadline, once needed */
  lua_pushinteger(L, nfmt);
  lua_pushboolean(L, iter);
  lua_pushinteger(L, ++st->rcall);
  lua_rotate(L, R_DEADLINE, 4);   /* these four go before the formats */
  st->rpos = st->scan = st->rstart;
  if (stream_fd(st) < 0) return read_fail(L, LSOCK_ECLOSED);
  return read_k(L, LUA_OK, 0);
}

/* stream:read(...) -> one value per format; nil at end of stream;
** nil, message, errno on failure, the input kept. */
int rd_read(lua_State *L) {
  LStream *st = stream_checkopen(L, 1, ST_READ);
  int nfmt = formats_check(L, lua_gettop(L) - 1);
  return read_begin(L, st, nfmt, 0);
}

/* The iterator of stream:lines(...): upvalues stream, n, n formats.  A
** call pushes the stream, n formats, 4 slots of call state (read_begin)
** and up to n results: 2n + 5, then room for the Lua API as usual. */
static int lines_iter(lua_State *L) {
  int n = (int)lua_tointeger(L, lua_upvalueindex(2));
  lua_settop(L, 0);
  luaL_checkstack(L, 2 * n + 5 + LUA_MINSTACK, "too many formats");
  lua_pushvalue(L, lua_upvalueindex(1));
  LStream *st = stream_usable(L, (LStream *)lua_touserdata(L, 1), ST_READ);
  for (int i = 1; i <= n; i++) lua_pushvalue(L, lua_upvalueindex(2 + i));
  return read_begin(L, st, n, 1);
}

/* stream:lines(...) -> an iterator reading the formats at each step; it
** ends at end of stream and raises on a failure. */
int rd_lines(lua_State *L) {
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

/* Take the write call's strings from (W_ARG, W_OFF) on; the position
** reached is saved there.  0 once all is taken, else an errno. */
static int write_data(lua_State *L, LStream *st) {
  int top = lua_gettop(L), i = (int)lua_tointeger(L, W_ARG), err = 0;
  size_t off = (size_t)lua_tointeger(L, W_OFF);
  size_t size = st->vbuf == VBUF_NO ? 0 : st->wsize;
  for (; i <= top && !err; i++, off = 0) {
    size_t len, taken;
    const char *p = lua_tolstring(L, i, &len);
    while (off < len && !err) {
      err = write_step(L, st, p + off, len - off, size, &taken);
      off += taken;
    }
    if (err) break;
  }
  lua_pushinteger(L, i);
  lua_replace(L, W_ARG);
  lua_pushinteger(L, (lua_Integer)off);
  lua_replace(L, W_OFF);
  return err;
}

/* nil, message, errno, and how many bytes of this call were taken (they
** are in the buffer or sent), as sendall reports. */
static int write_fail(lua_State *L, int err) {
  int i = (int)lua_tointeger(L, W_ARG);
  lua_Integer taken = lua_tointeger(L, W_OFF);
  for (int j = W_DATA; j < i; j++) taken += (lua_Integer)lua_rawlen(L, j);
  err_push(L, err);
  lua_pushinteger(L, taken);
  return 4;
}

/* write_k after a yield: the position (W_ARG, W_OFF) must lie in the
** strings of the stack it left (top ctx), which write_data and
** write_fail index by it. */
static void write_recheck(lua_State *L, lua_KContext ctx) {
  lua_Integer i = lua_tointeger(L, W_ARG), off = lua_tointeger(L, W_OFF);
  if (!lua_isinteger(L, W_ARG) || i < W_DATA || i > (lua_Integer)ctx + 1 ||
      !lua_isinteger(L, W_OFF) || off < 0 ||
      (i <= (lua_Integer)ctx && (size_t)off > lua_rawlen(L, (int)i)))
    wait_changed(L);
}

static int write_k(lua_State *L, int status, lua_KContext ctx) {
  LStream *st = stream_resumedst(L, status);
  if (status != LUA_OK) write_recheck(L, ctx);
  int err = stream_resumed(L, st, status, ctx);
  while (!err) {
    if (stream_fd(st) < 0) { err = LSOCK_ECLOSED; break; }
    err = write_data(L, st);
    if (!err && lua_toboolean(L, W_FLUSH)) err = stream_sendbuf(L, st);
    if (!err) {
      lua_settop(L, 1);
      return 1;
    }
    if (err == EAGAIN) err = stream_wait(L, st, WAIT_WRITE, W_DEADLINE, write_k);
  }
  return write_fail(L, err);
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

/* stream:write(...) -> the stream; nil, message, errno, bytes taken. */
int rd_write(lua_State *L) {
  LStream *st = stream_checkopen(L, 1, ST_WRITE);
  int top = lua_gettop(L), flush = st->vbuf == VBUF_NO;
  for (int i = 2; i <= top; i++) flush |= write_arg(L, st, i);
  lua_pushnil(L);   /* the deadline, once needed */
  lua_pushinteger(L, W_DATA);
  lua_pushinteger(L, 0);
  lua_pushboolean(L, flush);
  lua_rotate(L, W_DEADLINE, 4);   /* these four go before the strings */
  return write_k(L, LUA_OK, 0);
}

static int flush_k(lua_State *L, int status, lua_KContext ctx) {
  LStream *st = stream_resumedst(L, status);
  int err = stream_resumed(L, st, status, ctx);
  if (!err) err = stream_flush(L, st, flush_k);
  return err_pushresult(L, err);
}

/* stream:flush() -> true; nil, message, errno. */
int rd_flush(lua_State *L) {
  stream_checkopen(L, 1, 0);
  lua_settop(L, 1);
  lua_pushnil(L);   /* the deadline, once needed */
  return flush_k(L, LUA_OK, 0);
}

/*
** buffer.c - socket.buffer, a reusable block of bytes (Python's bytearray
** for recv_into), and the socket methods that receive into one:
** recv_into and recvfrom_into.  send and sendall (sockio.c, tls_sock.c)
** take a buffer and a range through buffer_checkbytes, so that bytes can
** go from recv_into to sendall without a Lua string per chunk.
**
** A buffer has a fixed size, chosen when it is made; its bytes are read
** back as strings with sub and written with set, both bounds-checked.
*/
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "base/errors.h"
#include "addr.h"
#include "base/aux.h"
#include "core/wait.h"
#include "socket.h"

#define LSOCK_BUFFER "luasock.buffer"

/* The largest buffer: a recv's length must fit an ssize_t, and a size
** past what malloc may give would abort a sanitized build. */
#define BUFFER_MAX ((lua_Integer)INT_MAX)

/* The bytes a script writes begin past the size of a socket: sock_test
** reads a metatable's address from inside the block, which no buffer can
** therefore forge (the header is zeroes there). */
typedef struct Buffer {
  size_t size;
  char header[sizeof(LSocket)];
  char data[];
} Buffer;

static Buffer *buffer_check(lua_State *L, int idx) {
  return (Buffer *)luaL_checkudata(L, idx, LSOCK_BUFFER);
}

/* The range i..j (string.sub's rules: negative counts from the end, out
** of bounds is cut) of a block of len bytes, as a start and a length. */
static void range_of(lua_Integer i, lua_Integer j, size_t len, size_t *start, size_t *n) {
  lua_Integer l = (lua_Integer)len;
  if (i < 0) i = i < -l ? 1 : l + i + 1;
  else if (i == 0) i = 1;
  if (i > l) i = l + 1;
  if (j < 0) j = j < -l ? 0 : l + j + 1;
  else if (j > l) j = l;
  *start = (size_t)(i - 1);
  *n = i > j ? 0 : (size_t)(j - i + 1);
}

const char *buffer_checkbytes(lua_State *L, int idx, size_t *len, int *next) {
  const char *s = lua_tolstring(L, idx, len);   /* a number as its text, as before */
  if (s != NULL) {   /* a string: one API call on the common path */
    *next = idx + 1;
    return s;
  }
  Buffer *b = (Buffer *)luaL_testudata(L, idx, LSOCK_BUFFER);
  if (b == NULL) luaL_typeerror(L, idx, "string or socket.buffer");
  size_t start;
  range_of(luaL_optinteger(L, idx + 1, 1), luaL_optinteger(L, idx + 2, -1), b->size,
           &start, len);
  *next = idx + 3;
  return b->data + start;
}

/* #b and b:len() -> its size in bytes */
static int buffer_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)buffer_check(L, 1)->size);
  return 1;
}

/* b:sub([i [, j]]) -> its bytes i..j as a string (string.sub's rules) */
static int buffer_sub(lua_State *L) {
  Buffer *b = buffer_check(L, 1);
  size_t start, n;
  range_of(luaL_optinteger(L, 2, 1), luaL_optinteger(L, 3, -1), b->size, &start, &n);
  lua_pushlstring(L, b->data + start, n);
  return 1;
}

/* b:set(pos, data) -> true: data (a string) copied in at pos (1-based);
** it must fit, from pos to the end at most */
static int buffer_set(lua_State *L) {
  Buffer *b = buffer_check(L, 1);
  lua_Integer pos = luaL_checkinteger(L, 2);
  size_t len;
  const char *data = luaL_checklstring(L, 3, &len);
  luaL_argcheck(L, pos >= 1 && (lua_Unsigned)pos - 1 <= b->size, 2, "position out of bounds");
  luaL_argcheck(L, len <= b->size - (size_t)(pos - 1), 3, "data does not fit in the buffer");
  memcpy(b->data + pos - 1, data, len);
  lua_pushboolean(L, 1);
  return 1;
}

static int buffer_tostring(lua_State *L) {
  Buffer *b = buffer_check(L, 1);
  lua_pushfstring(L, "socket.buffer (%I bytes): %p", (lua_Integer)b->size, (void *)b);
  return 1;
}

static const luaL_Reg buf_meta[] = {
  {"__len", buffer_len},
  {"__tostring", buffer_tostring},
  {NULL, NULL}
};
static const luaL_Reg buf_methods[] = {
  {"len", buffer_len},
  {"sub", buffer_sub},
  {"set", buffer_set},
  {NULL, NULL}
};
static const AuxClass buffer_class = {LSOCK_BUFFER, buf_meta, buf_methods, 0};

/* Push a new buffer of size bytes, zeroed. */
static Buffer *buffer_push(lua_State *L, size_t size) {
  Buffer *b = (Buffer *)lua_newuserdatauv(L, offsetof(Buffer, data) + size, 0);
  memset(b, 0, offsetof(Buffer, data) + size);
  b->size = size;
  aux_setclass(L, &buffer_class);
  return b;
}

/* socket.buffer(size | string) -> a buffer of size zero bytes, or holding
** a copy of the string */
static int buffer_new(lua_State *L) {
  size_t len = 0;
  const char *init = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  if (init == NULL) len = (size_t)aux_checkint(L, 1, 0, BUFFER_MAX);
  luaL_argcheck(L, len <= (size_t)BUFFER_MAX, 1, "buffer too large");
  Buffer *b = buffer_push(L, len);
  if (init != NULL) memcpy(b->data, init, len);
  return 1;
}

/* ---- recv_into, recvfrom_into ---------------------------------------- */

enum { RECV_FROM = 1 << 30 };   /* op->flags: recvfrom_into (no MSG_* flag uses bit 30) */

/* One recv of at most op->size bytes into op->data (a buffer's bytes):
** pushes the count, and the sender for recvfrom_into.  A TLS socket
** reads through TLS (which may ask to wait for the other direction). */
static int recv_into_try(lua_State *L, Op *op) {
  LSocket *s = sock_ofop(op);
  char *p = (char *)op->data;
  if (s->tls) {
    size_t got;
    int err = tls_streamrecv(L, s, p, op->size, &got);
    if (err != 0) return err;
    lua_pushinteger(L, (lua_Integer)got);
    return 0;
  }
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int from = (op->flags & RECV_FROM) != 0;
  ssize_t n = recvfrom(s->w.fd, p, op->size, op->flags & ~RECV_FROM,
                       from ? (struct sockaddr *)&ss : NULL, from ? &len : NULL);
  if (n < 0) return errno;
  lua_pushinteger(L, (lua_Integer)n);   /* with MSG_TRUNC: the real length, as in Python */
  if (!from) return 0;
  if (len == 0 && s->family == AF_UNIX) lua_pushliteral(L, "");   /* unnamed */
  else addr_push(L, (const struct sockaddr *)&ss, len);
  return 0;
}

/* recv_into and recvfrom_into: nbytes 0 or nil means the whole buffer, as
** in Python; more than the buffer holds raises. */
static int recv_into_start(lua_State *L, int from) {
  LSocket *s = sock_checkopen(L, 1);
  Buffer *b = buffer_check(L, 2);
  lua_Integer n = aux_optint(L, 3, 0, 0, LUA_MAXINTEGER);
  luaL_argcheck(L, (lua_Unsigned)n <= b->size, 3, "nbytes larger than the buffer");
  int flags = aux_optflags(L, 4);
  if (s->tls && (flags != 0 || from))
    return luaL_error(L, from ? "recvfrom_into is not supported on a TLS socket"
                              : "flags are not allowed on a TLS socket");
  Op op;
  sock_opinit(&op, s, WAIT_READ, flags | (from ? RECV_FROM : 0), recv_into_try,
              wait_pushresults);
  op.data = b->data;
  op.size = n == 0 ? b->size : (size_t)n;
  op.anchor[1] = 2;
  if (op.size == 0 && !from) {   /* an empty buffer: nothing to wait for */
    lua_pushinteger(L, 0);
    return 1;
  }
  return wait_op(L, &op);
}

/* s:recv_into(buffer [, nbytes [, flags]]) -> bytes received, written from
** the buffer's first byte; 0 at the end of the stream */
static int sock_recv_into(lua_State *L) {
  return recv_into_start(L, 0);
}

/* s:recvfrom_into(buffer [, nbytes [, flags]]) -> bytes received, address */
static int sock_recvfrom_into(lua_State *L) {
  return recv_into_start(L, 1);
}

const luaL_Reg buffer_methods[] = {
  {"recv_into", sock_recv_into},
  {"recvfrom_into", sock_recvfrom_into},
  {NULL, NULL}
};

const luaL_Reg buffer_funcs[] = {
  {"buffer", buffer_new},
  {NULL, NULL}
};

/*
** tls_sock.c - the Lua TLS socket: wrap_socket, the calls that move data
** through TLS, and the rest of Python's SSLSocket.
**
** A TLS socket is an LSocket (socket.c's methods that need no TLS work on
** it) whose metatable replaces the data calls.  Each data call fills an
** operation record (wait.h: the kind of call in flags, the data, the
** deadline, the progress) and returns what the retry driver returns: the
** try step (tls_conn.c) says done, want-read, want-write or failed, and
** the driver waits for the direction asked, whatever the call is (a read
** that must write waits for writability).
**
** A server's socket that has not shaken hands yet does so on its first
** call (OpenSSL starts the handshake by itself), bounded by its
** context's handshake_timeout; a handshake that misses its deadline
** fails closed: the TLS connection is dropped, so nothing can go over it
** afterwards.  accept, connect, wrap_socket's handshake and unwrap's
** plain socket are glued in Lua (lua/luasock/ssl.lua).
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>

#include "tls.h"
#include "base/errors.h"
#include "base/aux.h"
#include "core/clock.h"
#include "core/loop.h"
#include "core/wait.h"
#include "socket.h"

/* One read of a record: TLS records carry at most 16 KiB of data. */
#define TLS_READ_MAX 16384

/* The kind of a call, in its Op's flags. */
enum { OP_HANDSHAKE, OP_WRAP, OP_RECV, OP_SEND, OP_SENDALL, OP_SHUTDOWN };

LTLS *tlssock_test(lua_State *L, int idx) {
  LSocket *s = sock_test(L, idx);
  return s != NULL && s->tls ? (LTLS *)s : NULL;
}

static LTLS *tls_check(lua_State *L, int idx) {
  LTLS *t = tlssock_test(L, idx);
  if (t == NULL) luaL_typeerror(L, idx, "TLS socket");
  return t;
}

static LTLS *tls_checkopen(lua_State *L, int idx) {
  LTLS *t = tls_check(L, idx);
  if (t->s.w.fd < 0) luaL_error(L, "attempt to use a closed socket");
  return t;
}

int tls_readable(const LSocket *s) {
  return s->tls && tlsconn_pending((const LTLS *)s);
}

/* ---- streams ---------------------------------------------------------- */

/* A try step's outcome as a stream's syscall result, for a call in
** direction dir: a want of that direction is EAGAIN (the stream's own
** wait: a read first sends what it has pending), of the other one
** OP_WANTREAD or OP_WANTWRITE, which the stream's try hands to the driver
** (a read that must write waits to write); a TLS failure leaves its
** message and code for err_push. */
static int stream_outcome(lua_State *L, LTLS *t, int step, int dir) {
  if (step == TLS_DONE) return 0;
  if (step == TLS_WANTREAD) return dir == WAIT_READ ? EAGAIN : OP_WANTREAD;
  if (step == TLS_WANTWRITE) return dir == WAIT_WRITE ? EAGAIN : OP_WANTWRITE;
  int err = tlsconn_err(t);            /* TLS_AGAIN too: the driver tries again */
  if (err != LSOCK_ETLS) return err;
  lua_createtable(L, 2, 0);
  tlsconn_pusherr(L, t, err);          /* nil, message, code */
  lua_rawseti(L, -4, 2);
  lua_rawseti(L, -3, 1);
  lua_pop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, LSOCK_TLSERR_KEY);
  return LSOCK_ETLS;
}

int tls_streamrecv(lua_State *L, LSocket *s, char *p, size_t len, size_t *n) {
  LTLS *t = (LTLS *)s;
  return stream_outcome(L, t, tlsconn_read(L, t, p, len, n), WAIT_READ);
}

int tls_streamsend(lua_State *L, LSocket *s, const char *p, size_t len, size_t *n) {
  LTLS *t = (LTLS *)s;
  return stream_outcome(L, t, tlsconn_write(L, t, p, len, n), WAIT_WRITE);
}

/* ---- running a call ---------------------------------------------------- */

/* The TLS socket of an op: its Watch begins it. */
static LTLS *op_tls(const Op *op) {
  return (LTLS *)op->w;
}

/* A server's unfinished handshake is also bounded by its handshake
** deadline: the next wait ends at the nearer of the two. */
static void op_bound(const LTLS *t, Op *op) {
  if (t->handshaken || t->hs_deadline <= 0 || op->deadline == 0) return;
  if (op->deadline < 0 || t->hs_deadline < op->deadline) op->deadline = t->hs_deadline;
}

/* One attempt at the call (op->flags is its kind); on TLS_DONE the
** results are pushed.  The data of a send is op->data (anchored). */
static int op_step(lua_State *L, LTLS *t, Op *op) {
  size_t n = 0;
  int step;
  switch (op->flags) {
    case OP_RECV: {
      char buf[TLS_READ_MAX];
      step = tlsconn_read(L, t, buf, op->size < sizeof buf ? op->size : sizeof buf, &n);
      if (step == TLS_DONE) lua_pushlstring(L, buf, n);
      return step;
    }
    case OP_SEND: case OP_SENDALL: {
      do {                             /* sendall: until all went or a wait */
        step = tlsconn_write(L, t, (const char *)op->data + op->done, op->size - op->done, &n);
        if (step != TLS_DONE) return step;
        op->done += n;
      } while (op->flags == OP_SENDALL && op->done < op->size);
      if (op->flags == OP_SEND) lua_pushinteger(L, (lua_Integer)n);
      else lua_pushboolean(L, 1);
      return TLS_DONE;
    }
    case OP_SHUTDOWN: step = tlsconn_shutdown(L, t); break;
    default: step = tlsconn_handshake(L, t); break;
  }
  if (step == TLS_DONE && op->flags == OP_WRAP) wait_pushanchor(L, op, 0);   /* the new socket */
  else if (step == TLS_DONE) lua_pushboolean(L, 1);
  return step;
}

/* The try step the driver runs: done (0), the direction to wait for, or
** the error. */
static int op_try(lua_State *L, Op *op) {
  LTLS *t = op_tls(op);
  if (t->s.w.fd < 0) return LSOCK_ECLOSED;
  if (t->server_side && !t->handshaken && t->hs_deadline <= 0)
    t->hs_deadline = clock_deadline(t->ctx->handshake_timeout);
  int step = op_step(L, t, op);
  if (step == TLS_DONE) return 0;
  if (step == TLS_FAILED || step == TLS_AGAIN) return tlsconn_err(t);
  op_bound(t, op);
  return step == TLS_WANTREAD ? OP_WANTREAD : OP_WANTWRITE;
}

static void tls_closeall(lua_State *L, LTLS *t, int notify);

/* The end of a call: its results, or nil, message, code (and sendall's
** count).  A handshake that timed out drops the connection (fails
** closed); wrap_socket's closes the new socket, which nobody else has. */
static int op_push(lua_State *L, Op *op, int err, int nres) {
  LTLS *t = op_tls(op);
  if (err == 0) return nres;
  if (err == LSOCK_ETIMEOUT && !t->handshaken && t->ssl) {
    tlsconn_free(t);
    if (t->s.w.fd >= 0) shutdown(t->s.w.fd, SHUT_RDWR);
  }
  tlsconn_pusherr(L, t, err);
  if (op->flags == OP_WRAP) tls_closeall(L, t, 0);
  if (op->flags != OP_SENDALL) return 3;
  lua_pushinteger(L, (lua_Integer)op->done);
  return 4;
}

/* Run a call of kind on the TLS socket at 1 (anchored), with the data of
** a send at 2 (anchored). */
static int op_start(lua_State *L, LTLS *t, int kind, const char *data, size_t size) {
  Op op;
  wait_opinit(&op, op_try, op_push, &t->s.w, WAIT_READ, -1);
  op.deadline = clock_deadline(t->s.timeout);   /* absolute now: op_bound lowers it */
  op.timeout = 0;
  op.flags = kind;
  op.size = size;
  op.anchor[0] = 1;
  if (kind == OP_SEND || kind == OP_SENDALL) {
    op.data = data;                    /* a string's or a buffer's bytes */
    op.anchor[1] = 2;
  }
  return wait_op(L, &op);
}

/* ---- data calls ---------------------------------------------------------- */

/* TLS has no flags to give: a non-zero one is refused, as in Python. */
static void check_noflags(lua_State *L, int idx) {
  if (aux_optflags(L, idx) != 0) luaL_argerror(L, idx, "flags are not allowed on a TLS socket");
}

/* s:recv(bufsize) -> data, "" at the end of the stream */
static int tls_recv(lua_State *L) {
  LTLS *t = tls_checkopen(L, 1);
  lua_Integer size = luaL_checkinteger(L, 2);
  luaL_argcheck(L, size >= 0, 2, "negative buffer size");
  check_noflags(L, 3);
  if (size == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  lua_pushnil(L);
  lua_replace(L, 2);
  return op_start(L, t, OP_RECV, NULL, (size_t)size);
}

static int send_start(lua_State *L, int kind) {
  LTLS *t = tls_checkopen(L, 1);
  size_t len;
  int next;
  const char *p = buffer_checkbytes(L, 2, &len, &next);
  check_noflags(L, next);
  if (len == 0) {                      /* SSL_write refuses 0 bytes */
    if (kind == OP_SEND) lua_pushinteger(L, 0);
    else lua_pushboolean(L, 1);
    return 1;
  }
  return op_start(L, t, kind, p, len);
}

/* s:send(data) -> bytes sent (at most one record's worth may go) */
static int tls_send(lua_State *L) {
  return send_start(L, OP_SEND);
}

/* s:sendall(data) -> true, or nil, message, code, bytes sent */
static int tls_sendall(lua_State *L) {
  return send_start(L, OP_SENDALL);
}

/* s:do_handshake() -> true */
static int tls_do_handshake(lua_State *L) {
  LTLS *t = tls_checkopen(L, 1);
  if (t->handshaken) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return op_start(L, t, OP_HANDSHAKE, NULL, 0);
}

/* s:_shutdown_tls(): send close_notify and wait for the peer's; unwrap
** (lua/luasock/ssl.lua) then gives the descriptor back as a plain socket. */
static int tls_shutdown_tls(lua_State *L) {
  LTLS *t = tls_checkopen(L, 1);
  return op_start(L, t, OP_SHUTDOWN, NULL, 0);
}

/* s:_detach_plain(): after _shutdown_tls, a plain socket on the same
** descriptor, with the same timeout; this one is closed. */
static int tls_detach_plain(lua_State *L) {
  LTLS *t = tls_checkopen(L, 1);
  LSocket *s = sock_push(L, t->s.family, t->s.type, t->s.proto);
  s->timeout = t->s.timeout;
  tlsconn_free(t);
  loop_unwatch(L, &t->s.w);               /* its waiters see "closed" */
  s->w.fd = t->s.w.fd;
  t->s.w.fd = -1;
  return 1;
}

/* ---- information --------------------------------------------------------- */

static SSL *tls_handshaken(lua_State *L, int idx) {
  LTLS *t = tls_check(L, idx);
  return t->ssl && t->handshaken ? t->ssl : NULL;
}

/* s:getpeercert([binary]) -> a table, the DER string, or nil */
static int tls_getpeercert(lua_State *L) {
  LTLS *t = tls_checkopen(L, 1);
  return tlsconn_pushpeercert(L, t, lua_toboolean(L, 2));
}

/* s:cipher() -> name, protocol, secret bits; nil before the handshake */
static int tls_cipher(lua_State *L) {
  SSL *ssl = tls_handshaken(L, 1);
  const SSL_CIPHER *c = ssl ? SSL_get_current_cipher(ssl) : NULL;
  if (c == NULL) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushstring(L, SSL_CIPHER_get_name(c));
  lua_pushstring(L, SSL_CIPHER_get_version(c));
  lua_pushinteger(L, SSL_CIPHER_get_bits(c, NULL));
  return 3;
}

/* s:version() -> "TLSv1.3", "TLSv1.2"...; nil before the handshake */
static int tls_version(lua_State *L) {
  SSL *ssl = tls_handshaken(L, 1);
  if (ssl) lua_pushstring(L, SSL_get_version(ssl));
  else lua_pushnil(L);
  return 1;
}

/* s:selected_alpn_protocol() -> the protocol both sides chose, or nil */
static int tls_selected_alpn_protocol(lua_State *L) {
  SSL *ssl = tls_handshaken(L, 1);
  const unsigned char *p = NULL;
  unsigned int len = 0;
  if (ssl) SSL_get0_alpn_selected(ssl, &p, &len);
  if (p && len) lua_pushlstring(L, (const char *)p, len);
  else lua_pushnil(L);
  return 1;
}

/* s:pending() -> decrypted bytes ready to be read without waiting */
static int tls_pending(lua_State *L) {
  LTLS *t = tls_check(L, 1);
  lua_pushinteger(L, t->ssl ? SSL_pending(t->ssl) : 0);
  return 1;
}

/* ---- the object ---------------------------------------------------------- */

/* Free the TLS state and close the descriptor; never raises.  From
** close(), a connection that shook hands first sends close_notify,
** without waiting (tlsconn_notify). */
static void tls_closeall(lua_State *L, LTLS *t, int notify) {
  if (notify && t->ssl && t->handshaken && t->s.w.fd >= 0) tlsconn_notify(t);
  tlsconn_free(t);
  loop_closewatch(L, &t->s.w);
}

static int tls_close(lua_State *L) {
  tls_closeall(L, tls_check(L, 1), 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int tls_gc(lua_State *L) {
  tls_closeall(L, tls_check(L, 1), 0);
  return 0;
}

/* "TLS socket (fd 7, ...)": the plain socket's text, prefixed. */
static int tls_tostring(lua_State *L) {
  tls_check(L, 1);
  sock_pushtemplate(L);
  lua_getfield(L, -1, "__tostring");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  lua_pushfstring(L, "TLS %s", lua_tostring(L, -1));
  return 1;
}

/* The fields after the methods: context, server_side, server_hostname,
** family, type, proto, do_handshake_on_connect. */
static int tls_index(lua_State *L) {
  LTLS *t = tls_check(L, 1);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  const char *k = lua_tostring(L, 2);
  if (k == NULL) lua_pushnil(L);
  else if (strcmp(k, "context") == 0) lua_getiuservalue(L, 1, 2);
  else if (strcmp(k, "server_hostname") == 0) lua_getiuservalue(L, 1, 3);
  else if (strcmp(k, "server_side") == 0) lua_pushboolean(L, t->server_side);
  else if (strcmp(k, "do_handshake_on_connect") == 0) lua_pushboolean(L, !t->lazy);
  else if (strcmp(k, "family") == 0) lua_pushinteger(L, t->s.family);
  else if (strcmp(k, "type") == 0) lua_pushinteger(L, t->s.type);
  else if (strcmp(k, "proto") == 0) lua_pushinteger(L, t->s.proto);
  else lua_pushnil(L);
  return 1;
}

/* What a TLS socket cannot do: datagram and ancillary calls, which would
** bypass TLS. */
static int tls_unsupported(lua_State *L) {
  return luaL_error(L, "operation not supported on a TLS socket");
}

/* ---- SNI ----------------------------------------------------------------- */

/* The protected part of the servername callback: call the current
** context's sni_callback(sock, name, ctx) and switch to the context it
** returns.  Argument 1: the LTLS (light userdata). */
static int sni_p(lua_State *L) {
  LTLS *t = (LTLS *)lua_touserdata(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, TLS_SOCKETS_KEY);
  if (lua_rawgetp(L, -1, t) == LUA_TNIL) return 0;    /* 3: the socket */
  lua_getiuservalue(L, 3, 2);                         /* 4: the context */
  lua_getiuservalue(L, 4, 1);
  if (lua_getfield(L, -1, "sni_callback") == LUA_TNIL) return 0;
  lua_pushvalue(L, 3);
  lua_pushstring(L, SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name));
  lua_pushvalue(L, 4);
  lua_call(L, 3, 1);
  if (lua_isnil(L, -1)) return 0;
  LTLSContext *c = (LTLSContext *)luaL_testudata(L, -1, LSOCK_TLSCONTEXT);
  if (c == NULL || c->ctx == NULL || !c->server)
    return luaL_error(L, "sni_callback must return a server SSLContext or nil");
  if (SSL_set_SSL_CTX(t->ssl, c->ctx) == NULL) return luaL_error(L, "cannot switch context");
  SSL_set_verify(t->ssl, SSL_CTX_get_verify_mode(c->ctx), NULL);
  lua_setiuservalue(L, 3, 2);
  t->ctx = c;
  return 0;
}

int tlssock_sni(SSL *ssl, int *alert, void *arg) {
  (void)arg;
  LTLS *t = (LTLS *)SSL_get_app_data(ssl);
  lua_State *L = t ? t->L : NULL;
  if (L == NULL || !lua_checkstack(L, 8)) return SSL_TLSEXT_ERR_OK;
  int top = lua_gettop(L);
  lua_pushcfunction(L, sni_p);
  lua_pushlightuserdata(L, t);
  if (lua_pcall(L, 1, 0, 0) == LUA_OK) return SSL_TLSEXT_ERR_OK;
  const char *msg = lua_tostring(L, -1);
  free(t->cbmsg);
  t->cbmsg = strdup(msg ? msg : "error object is not a string");
  lua_settop(L, top);
  t->fail = TLSE_CALLBACK;
  *alert = SSL_AD_INTERNAL_ERROR;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* ---- wrap_socket --------------------------------------------------------- */

typedef struct WrapOpts {
  int server_side, handshake_on_connect, ragged_ok;
  const char *hostname;
} WrapOpts;

/* Read the options table at idx (nil: the defaults); unknown names and
** values of the wrong type raise. */
static void wrap_opts(lua_State *L, int idx, WrapOpts *o) {
  static const char *const names[] = {"server_side", "server_hostname",
    "do_handshake_on_connect", "suppress_ragged_eofs", NULL};
  o->server_side = 0, o->handshake_on_connect = 1, o->ragged_ok = 1, o->hostname = NULL;
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  for (int i = 0; names[i]; i++) {
    int type = lua_getfield(L, idx, names[i]);
    if (type != LUA_TNIL && type != (i == 1 ? LUA_TSTRING : LUA_TBOOLEAN))
      luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be a %s", names[i],
                                            i == 1 ? "string" : "boolean"));
    if (i == 1) o->hostname = lua_tostring(L, -1);   /* kept alive by the table */
    else if (type != LUA_TNIL) {
      int on = lua_toboolean(L, -1);
      if (i == 0) o->server_side = on;
      else if (i == 2) o->handshake_on_connect = on;
      else o->ragged_ok = on;
    }
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    const char *key = lua_tostring(L, -1);
    int known = 0;
    for (int i = 0; key && names[i]; i++) known |= strcmp(key, names[i]) == 0;
    if (!known || lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s'", luaL_tolstring(L, -1, NULL)));
  }
}

/* Push a TLS socket in the closed state, like sock (no descriptor yet). */
static LTLS *tls_push(lua_State *L, const LSocket *sock) {
  LTLS *t = (LTLS *)lua_newuserdatauv(L, sizeof *t, 3);
  memset(t, 0, sizeof *t);
  t->s.w.fd = -1;
  t->s.family = sock->family, t->s.type = sock->type, t->s.proto = sock->proto;
  t->s.timeout = sock->timeout;
  t->s.tls = 1;
  luaL_getmetatable(L, LSOCK_TLSSOCKET);
  t->s.meta = lua_topointer(L, -1);
  lua_setmetatable(L, -2);
  lua_getfield(L, LUA_REGISTRYINDEX, TLS_SOCKETS_KEY);
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, t);
  lua_getfield(L, LUA_REGISTRYINDEX, TLS_LIVE_KEY);
  t->live = (lua_Integer *)lua_touserdata(L, -1);
  lua_pop(L, 2);
  return t;
}

static int is_listening(int fd) {
  int on = 0;
  socklen_t len = sizeof on;
  return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* ctx:wrap_socket(sock [, opts]) -> a TLS socket on sock's descriptor
** (sock is closed, and so are the streams made from it, whose unread
** bytes TLS reads first).  A connected socket shakes hands at once unless
** do_handshake_on_connect is false; then a failure closes the TLS socket
** and returns nil, message, code.  A listening socket gets no TLS state
** of its own: its accept wraps each connection. */
int tlssock_wrap(lua_State *L) {
  LTLSContext *c = tlsctx_check(L, 1);
  LSocket *sock = sock_checkopen(L, 2);
  WrapOpts o;
  wrap_opts(L, 3, &o);
  luaL_argcheck(L, !sock->tls, 2, "already a TLS socket");
  luaL_argcheck(L, sock->type == SOCK_STREAM, 2, "a SOCK_STREAM socket expected");
  tlsctx_checkside(L, 1, c, o.server_side);
  if (o.server_side && o.hostname) luaL_argerror(L, 3, "server_hostname is for client sockets");
  if (!o.server_side && c->check_hostname && !o.hostname)
    luaL_error(L, "check_hostname requires server_hostname");
  lua_settop(L, 3);                    /* opts may be absent: the socket goes to 4 */
  LTLS *t = tls_push(L, sock);         /* 4 */
  t->server_side = o.server_side, t->ragged_ok = o.ragged_ok, t->lazy = !o.handshake_on_connect;
  t->ctx = c;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 4, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 4, 2);
  lua_pushstring(L, o.hostname);
  lua_setiuservalue(L, 4, 3);
  int listening = is_listening(sock->w.fd);
  size_t ahead = 0;
  const char *pre = stream_takeover(L, 2, &ahead);   /* 5 */
  if ((!listening && tlsconn_new(t, c, o.hostname) != 0) || tlsconn_prefeed(t, pre, ahead) != 0)
    return luaL_error(L, "not enough memory");
  loop_unwatch(L, &sock->w);              /* waiters on sock see "closed" */
  t->s.w.fd = sock->w.fd;
  sock->w.fd = -1;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  lua_settop(L, 4);
  if (listening || !o.handshake_on_connect ||
      getpeername(t->s.w.fd, (struct sockaddr *)&ss, &len) != 0)
    return 1;
  lua_replace(L, 1);
  return op_start(L, t, OP_WRAP, NULL, 0);
}

static const luaL_Reg tls_methods[] = {
  {"recv", tls_recv},
  {"send", tls_send},
  {"sendall", tls_sendall},
  {"do_handshake", tls_do_handshake},
  {"getpeercert", tls_getpeercert},
  {"cipher", tls_cipher},
  {"version", tls_version},
  {"selected_alpn_protocol", tls_selected_alpn_protocol},
  {"pending", tls_pending},
  {"close", tls_close},
  {"_shutdown_tls", tls_shutdown_tls},
  {"_detach_plain", tls_detach_plain},
  {"recvfrom", tls_unsupported},
  {"sendto", tls_unsupported},
  {"recvmsg", tls_unsupported},
  {"sendmsg", tls_unsupported},
  {"dup", tls_unsupported},
  {"detach", tls_unsupported},
  {NULL, NULL}
};

static const luaL_Reg tls_metamethods[] = {
  {"__gc", tls_gc},
  {"__close", tls_close},
  {"__tostring", tls_tostring},
  {NULL, NULL}
};

/* The metatable of TLS sockets: the socket template's metamethods and
** methods, with ours over them; __index is a function (the fields) with
** the method table as upvalue, left on the stack.  Also the registry's
** weak table of live TLS sockets, and the op record's metatable. */
void tlssock_open(lua_State *L) {
  sock_pushtemplate(L);
  int base = lua_gettop(L);
  luaL_newmetatable(L, LSOCK_TLSSOCKET);
  aux_copyfields(L, base);            /* the template's metamethods */
  lua_pushliteral(L, LSOCK_TLSSOCKET);
  lua_setfield(L, -2, "__name");       /* copied over: ours again */
  luaL_setfuncs(L, tls_metamethods, 0);
  lua_newtable(L);                     /* the methods: the template's, then ours */
  lua_getfield(L, base, "__index");
  lua_insert(L, -2);
  aux_copyfields(L, base + 2);
  luaL_setfuncs(L, tls_methods, 0);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, tls_index, 1);
  lua_setfield(L, base + 1, "__index");
  lua_replace(L, base);                /* the methods, left for the caller */
  lua_settop(L, base);
  aux_pushweak(L, "v");
  lua_setfield(L, LUA_REGISTRYINDEX, TLS_SOCKETS_KEY);
  if (lua_getfield(L, LUA_REGISTRYINDEX, TLS_LIVE_KEY) == LUA_TNIL) {   /* once per state */
    *(lua_Integer *)lua_newuserdatauv(L, sizeof(lua_Integer), 0) = 0;
    lua_setfield(L, LUA_REGISTRYINDEX, TLS_LIVE_KEY);
  }
  lua_pop(L, 1);
}

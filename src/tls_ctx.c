/*
** tls_ctx.c - the module "socket.ssl" and its context object.
**
** A context is an SSL_CTX with Python's fields.  Both kinds start secure:
** TLS 1.2 at least, renegotiation and compression off; a client context
** verifies the chain and the host name.  The fields verify_mode,
** check_hostname, minimum_version, maximum_version, sni_callback,
** handshake_timeout and num_tickets are read and written through
** __index/__newindex;
** loading keys and CA certificates, ALPN and ciphers are methods.
** Failures of files and OpenSSL return nil, message, code (the errno of a
** file that cannot be read, else OpenSSL's reason name); misuse raises.
*/
#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tls.h"
#include "luasock.h"
#include "base/aux.h"
#include "socket.h"
#include "lib.h"

/* TLSVersion values: Python's (the protocol numbers on the wire). */
#define MINIMUM_SUPPORTED (-2)
#define MAXIMUM_SUPPORTED (-1)

static const struct { const char *name; int value; } tls_versions[] = {
  {"MINIMUM_SUPPORTED", MINIMUM_SUPPORTED}, {"MAXIMUM_SUPPORTED", MAXIMUM_SUPPORTED},
  {"TLSv1", TLS1_VERSION}, {"TLSv1_1", TLS1_1_VERSION},
  {"TLSv1_2", TLS1_2_VERSION}, {"TLSv1_3", TLS1_3_VERSION},
};

LTLSContext *tlsctx_check(lua_State *L, int idx) {
  LTLSContext *c = (LTLSContext *)luaL_checkudata(L, idx, LSOCK_TLSCONTEXT);
  if (c->ctx == NULL) luaL_error(L, "attempt to use a freed SSL context");
  return c;
}

void tlsctx_checkside(lua_State *L, int idx, LTLSContext *c, int server_side) {
  if (c->server != server_side)
    luaL_argerror(L, idx, server_side ? "a server socket needs a PROTOCOL_TLS_SERVER context"
                                      : "a client socket needs a PROTOCOL_TLS_CLIENT context");
}

/* ---- errors ----------------------------------------------------------- */

/* Push nil, message, code for the oldest error in OpenSSL's queue (which
** is then cleared): a system error keeps its errno as code; others get
** "what: reason text" and the reason's name. */
static int push_queueerr(lua_State *L, const char *what) {
  unsigned long e = ERR_peek_error();
  ERR_clear_error();
  if (e == 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: unknown error", what);
    lua_pushliteral(L, "UNKNOWN");
    return 3;
  }
  if (ERR_SYSTEM_ERROR(e)) {
    int err = ERR_GET_REASON(e);
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", what, strerror(err));
    lua_pushinteger(L, err);
    return 3;
  }
  const char *text = ERR_reason_error_string(e);
  luaL_pushfail(L);
  lua_pushfstring(L, "%s: %s", what, text ? text : "unknown error");
  tls_pushreason(L, e);
  return 3;
}

/* ---- creating --------------------------------------------------------- */

/* The servers' ALPN choice: the first of our protocols the client also
** offers; none in common goes on without ALPN, as Python does. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  (void)arg;
  LTLSContext *c = (LTLSContext *)SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
  if (c == NULL || c->alpn == NULL) return SSL_TLSEXT_ERR_NOACK;
  unsigned char *chosen;
  if (SSL_select_next_proto(&chosen, outlen, c->alpn, (unsigned int)c->alpnlen, in, inlen)
      != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

/* Options every context gets: no renegotiation (a peer could make us
** spend CPU or confuse a STARTTLS exchange), no compression (CRIME);
** partial writes and a moving buffer, because a send is retried after a
** wait with what is left of a Lua string.  Our certificate chain is the
** one load_cert_chain read: OpenSSL would otherwise try to complete it
** from the CA store on every handshake, which with the system's store
** (create_default_context) reads the certificate directory each time. */
static void ctx_secure(SSL_CTX *ctx, int server) {
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                      (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                   SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  if (server) SSL_CTX_set_tlsext_servername_callback(ctx, tlssock_sni);
}

/* Apply verify_mode to the SSL_CTX: a client treats CERT_OPTIONAL as
** CERT_REQUIRED (a server always sends a certificate), as Python. */
static void ctx_setverify(LTLSContext *c, int mode) {
  int flags = SSL_VERIFY_NONE;
  if (mode != CERT_NONE) flags = SSL_VERIFY_PEER;
  if (mode == CERT_REQUIRED && c->server) flags |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(c->ctx, flags, NULL);
  c->verify_mode = mode;
}

/* Push a new context for one side: client contexts verify the peer and
** its host name, server contexts ask no client certificate.  Raises when
** OpenSSL has no memory. */
static LTLSContext *ctx_push(lua_State *L, int server) {
  LTLSContext *c = (LTLSContext *)lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, LSOCK_TLSCONTEXT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  c->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (c->ctx == NULL) luaL_error(L, "cannot create an SSL context (out of memory)");
  SSL_CTX_set_app_data(c->ctx, c);
  c->server = server;
  c->handshake_timeout = 60;   /* nginx's ssl_handshake_timeout */
  ctx_secure(c->ctx, server);
  ctx_setverify(c, server ? CERT_NONE : CERT_REQUIRED);
  c->check_hostname = !server;
  return c;
}

/* ssl.SSLContext(protocol): PROTOCOL_TLS_CLIENT or PROTOCOL_TLS_SERVER. */
static int tls_SSLContext(lua_State *L) {
  lua_Integer p = luaL_checkinteger(L, 1);
  luaL_argcheck(L, p == PROTOCOL_TLS_CLIENT || p == PROTOCOL_TLS_SERVER, 1,
                "PROTOCOL_TLS_CLIENT or PROTOCOL_TLS_SERVER expected");
  ctx_push(L, p == PROTOCOL_TLS_SERVER);
  return 1;
}

LTLSContext *tlsctx_pushdefault(lua_State *L, int server) {
  LTLSContext *c = ctx_push(L, server);
  SSL_CTX_set_default_verify_paths(c->ctx);   /* a missing store only means no CA */
  ERR_clear_error();
  return c;
}

/* ssl.create_default_context([purpose]): "client" (the default, also
** ssl.Purpose.SERVER_AUTH) or "server" (ssl.Purpose.CLIENT_AUTH); the
** system's CA store is loaded either way. */
static int tls_create_default_context(lua_State *L) {
  static const char *const purposes[] = {"client", "server", NULL};
  int server = luaL_checkoption(L, 1, "client", purposes);
  tlsctx_pushdefault(L, server);
  return 1;
}

static int ctx_gc(lua_State *L) {
  LTLSContext *c = (LTLSContext *)luaL_checkudata(L, 1, LSOCK_TLSCONTEXT);
  if (c->ctx) SSL_CTX_free(c->ctx);   /* a reference: sockets may still use it */
  c->ctx = NULL;
  free(c->alpn);
  c->alpn = NULL;
  return 0;
}

static int ctx_tostring(lua_State *L) {
  LTLSContext *c = (LTLSContext *)luaL_checkudata(L, 1, LSOCK_TLSCONTEXT);
  lua_pushfstring(L, "SSLContext (%s, %p)", c->server ? "server" : "client", (void *)c);
  return 1;
}

/* ---- methods ---------------------------------------------------------- */

/* The password callback's state: the Lua value at idx (a string, or a
** function returning one), called at most once, only if a key needs it. */
typedef struct Password {
  lua_State *L;
  int idx;
  int toolong;
} Password;

static int password_cb(char *buf, int size, int rwflag, void *u) {
  (void)rwflag;
  Password *pw = (Password *)u;
  lua_State *L = pw->L;
  if (lua_isnoneornil(L, pw->idx)) return -1;
  lua_pushvalue(L, pw->idx);
  if (lua_isfunction(L, -1) && lua_pcall(L, 0, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    return -1;
  }
  size_t len;
  const char *p = lua_tolstring(L, -1, &len);
  int ok = p != NULL && len <= (size_t)size;
  if (ok) memcpy(buf, p, len);
  else pw->toolong = p != NULL;
  lua_pop(L, 1);
  return ok ? (int)len : -1;
}

/* ctx:load_cert_chain(certfile [, keyfile [, password]]): the
** certificate chain (PEM) and its private key (in certfile when keyfile
** is nil); password is a string or a function that returns one. */
static int ctx_load_cert_chain(lua_State *L) {
  LTLSContext *c = tlsctx_check(L, 1);
  const char *certfile = luaL_checkstring(L, 2);
  const char *keyfile = luaL_optstring(L, 3, certfile);
  if (!lua_isnoneornil(L, 4) && !lua_isstring(L, 4) && !lua_isfunction(L, 4))
    luaL_typeerror(L, 4, "string or function");
  Password pw = {L, 4, 0};
  ERR_clear_error();
  SSL_CTX_set_default_passwd_cb(c->ctx, password_cb);
  SSL_CTX_set_default_passwd_cb_userdata(c->ctx, &pw);
  int ok = SSL_CTX_use_certificate_chain_file(c->ctx, certfile) == 1;
  const char *what = certfile;
  if (ok) {
    what = keyfile;
    ok = SSL_CTX_use_PrivateKey_file(c->ctx, keyfile, SSL_FILETYPE_PEM) == 1 &&
         SSL_CTX_check_private_key(c->ctx) == 1;
  }
  SSL_CTX_set_default_passwd_cb(c->ctx, NULL);   /* pw dies with this call */
  SSL_CTX_set_default_passwd_cb_userdata(c->ctx, NULL);
  if (pw.toolong) luaL_argerror(L, 4, "password too long");
  if (!ok) return push_queueerr(L, what);
  lua_pushboolean(L, 1);
  return 1;
}

/* Add every certificate of cadata (PEM text, or DER) to c's store;
** 0 when none was found or one is malformed. */
static int add_cadata(LTLSContext *c, const char *data, size_t len) {
  X509_STORE *store = SSL_CTX_get_cert_store(c->ctx);
  BIO *bio = BIO_new_mem_buf(data, (int)len);
  if (bio == NULL) return 0;
  int pem = len >= 10 && memcmp(data, "-----BEGIN", 10) == 0, count = 0, ok = 1;
  while (ok && BIO_pending(bio) > 0) {
    X509 *x = pem ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : d2i_X509_bio(bio, NULL);
    if (x == NULL) break;
    ok = X509_STORE_add_cert(store, x) == 1;
    X509_free(x);
    count++;
  }
  BIO_free(bio);
  if (ok && count > 0) ERR_clear_error();   /* PEM's trailing "no start line" */
  return ok && count > 0;
}

/* ctx:load_verify_locations([cafile [, capath [, cadata]]]): trusted CA
** certificates from a PEM file, a hashed directory, or a string. */
static int ctx_load_verify_locations(lua_State *L) {
  LTLSContext *c = tlsctx_check(L, 1);
  const char *cafile = luaL_optstring(L, 2, NULL);
  const char *capath = luaL_optstring(L, 3, NULL);
  size_t len = 0;
  const char *cadata = luaL_optlstring(L, 4, NULL, &len);
  if (!cafile && !capath && !cadata)
    return luaL_error(L, "cafile, capath and cadata cannot all be omitted");
  ERR_clear_error();
  if (cafile && SSL_CTX_load_verify_file(c->ctx, cafile) != 1)
    return push_queueerr(L, cafile);
  if (capath && SSL_CTX_load_verify_dir(c->ctx, capath) != 1)
    return push_queueerr(L, capath);
  if (cadata && !add_cadata(c, cadata, len)) return push_queueerr(L, "cadata");
  lua_pushboolean(L, 1);
  return 1;
}

/* ctx:load_default_certs(): the system's CA store (Debian's ca-certificates). */
static int ctx_load_default_certs(lua_State *L) {
  LTLSContext *c = tlsctx_check(L, 1);
  ERR_clear_error();
  if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) return push_queueerr(L, "default CA store");
  lua_pushboolean(L, 1);
  return 1;
}

/* ctx:set_alpn_protocols({"h2", "http/1.1"}): offered by a client, chosen
** from by a server (its own order first). */
static int ctx_set_alpn_protocols(lua_State *L) {
  LTLSContext *c = tlsctx_check(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_Integer n = luaL_len(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 2, i);
    size_t len;
    const char *p = lua_tolstring(L, -1, &len);
    if (p == NULL || len == 0 || len > 255)
      return luaL_argerror(L, 2, "protocol names must be strings of 1 to 255 bytes");
    lua_pop(L, 1);
    luaL_addchar(&b, (char)len);
    luaL_addlstring(&b, p, len);
  }
  luaL_pushresult(&b);
  size_t len;
  const unsigned char *wire = (const unsigned char *)lua_tolstring(L, -1, &len);
  unsigned char *copy = len ? (unsigned char *)malloc(len) : NULL;
  if (len && copy == NULL) return luaL_error(L, "not enough memory");
  if (len) memcpy(copy, wire, len);
  free(c->alpn);
  c->alpn = copy;
  c->alpnlen = len;
  if (SSL_CTX_set_alpn_protos(c->ctx, wire, (unsigned int)len) != 0)   /* 0 is success */
    return luaL_error(L, "not enough memory");
  lua_pushboolean(L, 1);
  return 1;
}

/* ctx:set_ciphers("ECDHE+AESGCM:..."): the TLS 1.2 cipher list (OpenSSL's
** syntax); TLS 1.3 suites are not affected, as in Python. */
static int ctx_set_ciphers(lua_State *L) {
  LTLSContext *c = tlsctx_check(L, 1);
  const char *list = luaL_checkstring(L, 2);
  ERR_clear_error();
  if (SSL_CTX_set_cipher_list(c->ctx, list) != 1) return push_queueerr(L, "set_ciphers");
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- fields ----------------------------------------------------------- */

static const char *const field_names[] = {
  "verify_mode", "check_hostname", "minimum_version", "maximum_version",
  "sni_callback", "handshake_timeout", "num_tickets", "protocol", NULL
};
enum { F_VERIFY, F_CHECKHOST, F_MINVER, F_MAXVER, F_SNI, F_HSTIMEOUT, F_TICKETS, F_PROTOCOL };

static int push_version(lua_State *L, int v, int dflt) {
  lua_pushinteger(L, v == 0 ? dflt : v);   /* 0: no bound set */
  return 1;
}

/* __index: methods first, then the fields. */
static int ctx_index(lua_State *L) {
  LTLSContext *c = tlsctx_check(L, 1);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  const char *key = lua_tostring(L, 2);
  int f = -1;
  for (int i = 0; key && field_names[i]; i++)
    if (strcmp(key, field_names[i]) == 0) f = i;
  switch (f) {
    case F_VERIFY: lua_pushinteger(L, c->verify_mode); return 1;
    case F_CHECKHOST: lua_pushboolean(L, c->check_hostname); return 1;
    case F_MINVER: return push_version(L, SSL_CTX_get_min_proto_version(c->ctx), MINIMUM_SUPPORTED);
    case F_MAXVER: return push_version(L, SSL_CTX_get_max_proto_version(c->ctx), MAXIMUM_SUPPORTED);
    case F_SNI: lua_getiuservalue(L, 1, 1); lua_getfield(L, -1, "sni_callback"); return 1;
    case F_HSTIMEOUT: lua_pushnumber(L, c->handshake_timeout); return 1;
    case F_TICKETS: lua_pushinteger(L, (lua_Integer)SSL_CTX_get_num_tickets(c->ctx)); return 1;
    case F_PROTOCOL:
      lua_pushinteger(L, c->server ? PROTOCOL_TLS_SERVER : PROTOCOL_TLS_CLIENT);
      return 1;
    default: lua_pushnil(L); return 1;
  }
}

/* A TLSVersion value at idx, for SSL_CTX_set_{min,max}_proto_version
** (0 for the *_SUPPORTED ends). */
static int check_version(lua_State *L, int idx) {
  lua_Integer v = luaL_checkinteger(L, idx);
  for (size_t i = 0; i < sizeof tls_versions / sizeof tls_versions[0]; i++)
    if (tls_versions[i].value == v) return v < 0 ? 0 : (int)v;
  return luaL_argerror(L, idx, "ssl.TLSVersion value expected");
}

static void set_verify(lua_State *L, LTLSContext *c) {
  lua_Integer m = luaL_checkinteger(L, 3);
  luaL_argcheck(L, m >= CERT_NONE && m <= CERT_REQUIRED, 3, "CERT_NONE, CERT_OPTIONAL or CERT_REQUIRED expected");
  if (m == CERT_NONE && c->check_hostname)
    luaL_error(L, "cannot set verify_mode to CERT_NONE when check_hostname is enabled");
  ctx_setverify(c, (int)m);
}

/* check_hostname = true needs a verified chain: CERT_NONE becomes
** CERT_REQUIRED, as in Python. */
static void set_checkhost(lua_State *L, LTLSContext *c) {
  luaL_checktype(L, 3, LUA_TBOOLEAN);
  c->check_hostname = lua_toboolean(L, 3);
  if (c->check_hostname && c->verify_mode == CERT_NONE) ctx_setverify(c, CERT_REQUIRED);
}

/* num_tickets: the TLS 1.3 session tickets a server sends after each
** handshake (OpenSSL's and Python's default 2); each costs about a
** sixth of a handshake's CPU, so a server whose clients never resume
** may set 0. */
static void set_tickets(lua_State *L, LTLSContext *c) {
  lua_Integer n = luaL_checkinteger(L, 3);
  luaL_argcheck(L, n >= 0 && n <= 64, 3, "a number of tickets from 0 to 64 expected");
  if (!c->server) luaL_error(L, "num_tickets is for server contexts");
  SSL_CTX_set_num_tickets(c->ctx, (size_t)n);
}

static int ctx_newindex(lua_State *L) {
  LTLSContext *c = tlsctx_check(L, 1);
  switch (luaL_checkoption(L, 2, NULL, field_names)) {
    case F_VERIFY: set_verify(L, c); break;
    case F_CHECKHOST: set_checkhost(L, c); break;
    case F_MINVER: SSL_CTX_set_min_proto_version(c->ctx, check_version(L, 3)); break;
    case F_MAXVER: SSL_CTX_set_max_proto_version(c->ctx, check_version(L, 3)); break;
    case F_SNI:
      if (!lua_isnil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
      if (!c->server) return luaL_error(L, "sni_callback is for server contexts");
      lua_getiuservalue(L, 1, 1);
      lua_pushvalue(L, 3);
      lua_setfield(L, -2, "sni_callback");
      break;
    case F_HSTIMEOUT:
      c->handshake_timeout = aux_checktimeout(L, 3, 0, "handshake_timeout");
      break;
    case F_TICKETS: set_tickets(L, c); break;
    default: return luaL_error(L, "SSLContext field 'protocol' is read-only");
  }
  return 0;
}

/* ---- the module ------------------------------------------------------- */

static const luaL_Reg ctx_methods[] = {
  {"load_cert_chain", ctx_load_cert_chain},
  {"load_verify_locations", ctx_load_verify_locations},
  {"load_default_certs", ctx_load_default_certs},
  {"set_alpn_protocols", ctx_set_alpn_protocols},
  {"set_ciphers", ctx_set_ciphers},
  {"wrap_socket", tlssock_wrap},
  {NULL, NULL}
};

/* The context metatable; leaves the method table on the stack. */
static void ctx_open(lua_State *L) {
  luaL_newmetatable(L, LSOCK_TLSCONTEXT);
  lua_pushcfunction(L, ctx_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, ctx_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, ctx_newindex);
  lua_setfield(L, -2, "__newindex");
  luaL_newlib(L, ctx_methods);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, ctx_index, 1);
  lua_setfield(L, -3, "__index");
  lua_remove(L, -2);
}

static void set_int(lua_State *L, const char *name, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, name);
}

static void set_constants(lua_State *L) {
  set_int(L, "PROTOCOL_TLS_CLIENT", PROTOCOL_TLS_CLIENT);
  set_int(L, "PROTOCOL_TLS_SERVER", PROTOCOL_TLS_SERVER);
  set_int(L, "CERT_NONE", CERT_NONE);
  set_int(L, "CERT_OPTIONAL", CERT_OPTIONAL);
  set_int(L, "CERT_REQUIRED", CERT_REQUIRED);
  set_int(L, "OPENSSL_VERSION_NUMBER", (lua_Integer)OpenSSL_version_num());
  lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
  lua_setfield(L, -2, "OPENSSL_VERSION");
  lua_createtable(L, 0, 6);
  for (size_t i = 0; i < sizeof tls_versions / sizeof tls_versions[0]; i++)
    set_int(L, tls_versions[i].name, tls_versions[i].value);
  lua_setfield(L, -2, "TLSVersion");
  lua_createtable(L, 0, 2);             /* Python's names for the purposes */
  lua_pushliteral(L, "client");
  lua_setfield(L, -2, "SERVER_AUTH");
  lua_pushliteral(L, "server");
  lua_setfield(L, -2, "CLIENT_AUTH");
  lua_setfield(L, -2, "Purpose");
}

/* ssl._live_objects(): the SSL objects alive in this state, for tests
** that check collected TLS sockets freed theirs. */
static int tls_live_objects(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, TLS_LIVE_KEY);
  lua_pushinteger(L, *(const lua_Integer *)lua_touserdata(L, -1));
  return 1;
}

static const luaL_Reg tls_funcs[] = {
  {"SSLContext", tls_SSLContext},
  {"_live_objects", tls_live_objects},
  {"create_default_context", tls_create_default_context},
  {NULL, NULL}
};

/* require "socket.ssl".  The socket module is loaded first: TLS sockets
** copy its metatable.  The parts in Lua (lua/luasock/ssl.lua) get the
** module, both method tables and the plain socket methods. */
int luaopen_socket_ssl(lua_State *L) {
  tls_load(L);   /* before any OpenSSL call */
  luaopen_socket(L);   /* not package.loaded.socket: LuaSocket's in lua5.4 */
  stream_track(L);                     /* STARTTLS finds a socket's streams */
  lib_loadmodule(L, "luasock.ssl");  /* the chunk returns a function */
  lua_call(L, 0, 1);
  luaL_newlib(L, tls_funcs);
  set_constants(L);
  ctx_open(L);
  tlssock_open(L);                     /* pushes the TLS socket methods */
  sock_pushtemplate(L);
  lua_getfield(L, -1, "__index");
  lua_remove(L, -2);
  lua_call(L, 4, 1);
  return 1;
}

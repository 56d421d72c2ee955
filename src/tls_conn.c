/*
** tls_conn.c - one TLS connection over a socket's descriptor.
**
** The SSL object reads and writes through a BIO of our own: recv, and
** send with MSG_NOSIGNAL (a peer gone away is EPIPE, never SIGPIPE); the
** BIO first hands over the bytes a plain stream had read ahead before a
** STARTTLS (they arrived as ciphertext).  It keeps the errno of a failed
** syscall in the connection, where no later call can overwrite it.  A
** syscall error that the I/O driver tries again at once (wait_again: a
** signal interrupted it) is "retry" to OpenSSL, which keeps its state as
** for EAGAIN, and goes up to the driver as the step's error, so that the
** driver's one policy applies (again, or Ctrl-C raises) and no byte is
** lost.
**
** Each try step makes one attempt and says done, want-read, want-write or
** failed; the I/O driver waits and tries again, so nothing here waits or
** loops.  Every step starts with OpenSSL's error queue empty and leaves
** it empty: a failure's details are copied into the connection, so one
** task's error never shows up in another's call.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "base/errors.h"
#include "core/wait.h"

/* ---- the BIO over the descriptor ------------------------------------ */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* A failed syscall of the BIO: EAGAIN asks OpenSSL to retry when the
** descriptor is ready; an error the driver tries again at once asks it
** to retry too, and is kept in detail for the try step to pass up (see
** call_end); any other is the failure's detail. */
static int bio_failed(BIO *b, LTLS *t, int err, int dir) {
  int would_block = err == EAGAIN || err == EWOULDBLOCK;
  if (!would_block) t->detail = err;
  if (would_block || wait_again(err)) {
    if (dir == WAIT_READ) BIO_set_retry_read(b);
    else BIO_set_retry_write(b);
  }
  return -1;
}

/* Bytes read ahead by a plain stream come first; then recv.  0 is the
** end of the stream. */
static int bio_read(BIO *b, char *buf, int len) {
  LTLS *t = (LTLS *)BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (t->prepos < t->prelen) {
    size_t n = t->prelen - t->prepos;
    if (n > (size_t)len) n = (size_t)len;
    memcpy(buf, t->pre + t->prepos, n);
    t->prepos += n;
    return (int)n;
  }
  ssize_t n = recv(t->s.w.fd, buf, (size_t)len, 0);
  return n >= 0 ? (int)n : bio_failed(b, t, errno, WAIT_READ);
}

static int bio_write(BIO *b, const char *buf, int len) {
  LTLS *t = (LTLS *)BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t n = send(t->s.w.fd, buf, (size_t)len, MSG_NOSIGNAL);
  return n >= 0 ? (int)n : bio_failed(b, t, errno, WAIT_WRITE);
}

/* Only flush matters to SSL (writes are never buffered here). */
static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b; (void)num; (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void bio_makemethod(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "luasock socket");
  if (m == NULL) return;
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  bio_method = m;
}

/* ---- the SSL object --------------------------------------------------- */

/* Ask for the peer's name: SNI for a DNS name, and, when the context
** checks host names, a match of the certificate with the name or the IP
** address.  Returns 1, or 0 when OpenSSL refused (no memory). */
static int set_peername(LTLS *t, LTLSContext *c, const char *host) {
  unsigned char ip[16];
  int literal = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
  if (!literal && SSL_set_tlsext_host_name(t->ssl, host) != 1) return 0;
  if (!c->check_hostname) return 1;
  if (literal) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) == 1;
  SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return SSL_set1_host(t->ssl, host) == 1;
}

int tlsconn_new(LTLS *t, LTLSContext *c, const char *hostname) {
  pthread_once(&bio_once, bio_makemethod);
  ERR_clear_error();
  BIO *bio = bio_method ? BIO_new(bio_method) : NULL;
  t->ssl = bio ? SSL_new(c->ctx) : NULL;
  if (t->ssl == NULL) {
    BIO_free(bio);
    ERR_clear_error();
    return -1;
  }
  (*t->live)++;
  BIO_set_data(bio, t);
  SSL_set_bio(t->ssl, bio, bio);      /* the SSL owns the BIO now */
  SSL_set_app_data(t->ssl, t);
  t->ctx = c;
  if (t->server_side) SSL_set_accept_state(t->ssl);
  else SSL_set_connect_state(t->ssl);
  if (hostname && !set_peername(t, c, hostname)) {
    tlsconn_free(t);
    ERR_clear_error();
    return -1;
  }
  return 0;
}

void tlsconn_free(LTLS *t) {
  if (t->ssl) {
    SSL_free(t->ssl);
    (*t->live)--;
  }
  t->ssl = NULL;
  free(t->pre);
  t->pre = NULL;
  t->prelen = t->prepos = 0;
  free(t->cbmsg);
  t->cbmsg = NULL;
}

int tlsconn_prefeed(LTLS *t, const char *p, size_t len) {
  if (len == 0) return 0;
  char *copy = (char *)malloc(len);
  if (copy == NULL) return ENOMEM;
  memcpy(copy, p, len);
  free(t->pre);
  t->pre = copy;
  t->prelen = len;
  t->prepos = 0;
  return 0;
}

int tlsconn_pending(const LTLS *t) {
  if (t->ssl == NULL) return 0;
  return SSL_pending(t->ssl) > 0 || t->prepos < t->prelen;
}

/* ---- try steps -------------------------------------------------------- */

/* Before an SSL call: an empty error queue, no old failure, and L for the
** callbacks the call may run. */
static void call_begin(lua_State *L, LTLS *t) {
  ERR_clear_error();
  t->L = L;
  if (t->fail != TLSE_CALLBACK) t->fail = TLSE_NONE;
  t->detail = 0;
}

/* Record why the last SSL call failed and empty the queue.  A failed
** verification keeps the verify result; an EOF without close_notify is
** TLSE_EOF; a syscall's errno (saved by the BIO) TLSE_SYS. */
static int call_failed(LTLS *t, int sslerr) {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (t->fail == TLSE_CALLBACK) return TLS_FAILED;   /* the SNI callback's error */
  if (sslerr == SSL_ERROR_SYSCALL && e == 0) {
    t->fail = t->detail ? TLSE_SYS : TLSE_EOF;
  } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
             ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    t->fail = TLSE_VERIFY;
    t->detail = SSL_get_verify_result(t->ssl);
  } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
             ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    t->fail = TLSE_EOF;
  } else if (e != 0 && ERR_SYSTEM_ERROR(e)) {
    t->fail = TLSE_SYS;
    t->detail = ERR_GET_REASON(e);
  } else {
    t->fail = t->detail ? TLSE_SYS : TLSE_PROTO;
    if (!t->detail) t->detail = (long)e;
  }
  return TLS_FAILED;
}

/* The outcome of an SSL call that returned ok (1) or not.  A want whose
** syscall kept an error (bio_failed) is TLS_AGAIN: that error goes to the
** driver, which tries again at once. */
static int call_end(LTLS *t, int ok, int r) {
  t->L = NULL;
  if (ok) return TLS_DONE;
  int sslerr = SSL_get_error(t->ssl, r);
  if ((sslerr == SSL_ERROR_WANT_READ || sslerr == SSL_ERROR_WANT_WRITE) && t->detail != 0)
    return ERR_clear_error(), t->fail = TLSE_SYS, TLS_AGAIN;
  if (sslerr == SSL_ERROR_WANT_READ) return ERR_clear_error(), TLS_WANTREAD;
  if (sslerr == SSL_ERROR_WANT_WRITE) return ERR_clear_error(), TLS_WANTWRITE;
  return call_failed(t, sslerr);
}

static int not_connected(LTLS *t) {
  t->fail = TLSE_SYS;
  t->detail = ENOTCONN;
  return TLS_FAILED;
}

int tlsconn_handshake(lua_State *L, LTLS *t) {
  if (t->ssl == NULL) return not_connected(t);
  call_begin(L, t);
  int r = SSL_do_handshake(t->ssl);
  int step = call_end(t, r == 1, r);
  if (step == TLS_DONE) t->handshaken = 1;
  return step;
}

/* A clean end (close_notify) reads as 0 bytes; so does an end without
** it when ragged EOFs are allowed (suppress_ragged_eofs, as Python). */
int tlsconn_read(lua_State *L, LTLS *t, char *buf, size_t len, size_t *n) {
  *n = 0;
  if (t->ssl == NULL) return not_connected(t);
  call_begin(L, t);
  int r = SSL_read_ex(t->ssl, buf, len, n);
  if (r != 1 && SSL_get_error(t->ssl, r) == SSL_ERROR_ZERO_RETURN) {
    ERR_clear_error();
    t->L = NULL;
    return TLS_DONE;
  }
  int step = call_end(t, r == 1, r);
  if (step == TLS_FAILED && t->fail == TLSE_EOF && t->ragged_ok) return TLS_DONE;
  if (step == TLS_DONE) t->handshaken = 1;
  return step;
}

int tlsconn_write(lua_State *L, LTLS *t, const char *buf, size_t len, size_t *n) {
  *n = 0;
  if (t->ssl == NULL) return not_connected(t);
  call_begin(L, t);
  int r = SSL_write_ex(t->ssl, buf, len, n);
  int step = call_end(t, r == 1, r);
  if (step == TLS_DONE) t->handshaken = 1;
  return step;
}

/* Send our close_notify and read the peer's (unwrap needs the stream
** clean): 1 from SSL_shutdown is done; 0 means ours is sent, and a
** second call reads theirs (it may have come already: only a read that
** found nothing may wait, the loop reports no old readiness). */
int tlsconn_shutdown(lua_State *L, LTLS *t) {
  if (t->ssl == NULL) return not_connected(t);
  call_begin(L, t);
  int r = SSL_shutdown(t->ssl);
  if (r == 0) r = SSL_shutdown(t->ssl);
  if (r == 0) r = -1;                  /* not expected: a failure, not a wait */
  return call_end(t, r == 1, r);
}

/* An interrupted send is tried again (the BIO left OpenSSL ready to
** retry it), but a few times at most: a close never spins. */
enum { NOTIFY_TRIES = 4 };

void tlsconn_notify(LTLS *t) {
  if (t->ssl == NULL) return;
  for (int i = 0; i < NOTIFY_TRIES; i++) {
    call_begin(NULL, t);
    int r = SSL_shutdown(t->ssl);
    int interrupted = r < 0 && wait_again((int)t->detail);
    ERR_clear_error();
    if (!interrupted) break;
  }
}

int tlsconn_err(const LTLS *t) {
  return t->fail == TLSE_SYS ? (int)t->detail : LSOCK_ETLS;
}

/* ---- errors as Lua values -------------------------------------------- */

#define V(name) { name, #name }
static const struct { long code; const char *name; } verify_names[] = {
  V(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT), V(X509_V_ERR_UNABLE_TO_GET_CRL),
  V(X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE),
  V(X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY), V(X509_V_ERR_CERT_SIGNATURE_FAILURE),
  V(X509_V_ERR_CERT_NOT_YET_VALID), V(X509_V_ERR_CERT_HAS_EXPIRED),
  V(X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD), V(X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD),
  V(X509_V_ERR_OUT_OF_MEM), V(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
  V(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN), V(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
  V(X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE), V(X509_V_ERR_CERT_CHAIN_TOO_LONG),
  V(X509_V_ERR_CERT_REVOKED), V(X509_V_ERR_INVALID_CA), V(X509_V_ERR_PATH_LENGTH_EXCEEDED),
  V(X509_V_ERR_INVALID_PURPOSE), V(X509_V_ERR_CERT_UNTRUSTED), V(X509_V_ERR_CERT_REJECTED),
  V(X509_V_ERR_KEYUSAGE_NO_CERTSIGN), V(X509_V_ERR_HOSTNAME_MISMATCH),
  V(X509_V_ERR_EMAIL_MISMATCH), V(X509_V_ERR_IP_ADDRESS_MISMATCH),
  V(X509_V_ERR_EE_KEY_TOO_SMALL), V(X509_V_ERR_CA_KEY_TOO_SMALL), V(X509_V_ERR_CA_MD_TOO_WEAK),
  V(X509_V_ERR_UNSPECIFIED), V(X509_V_ERR_INVALID_CALL), V(X509_V_ERR_STORE_LOOKUP),
};
#undef V

/* Push the name of a verify result, "X509_V_ERR_<number>" if unknown. */
static void push_verifyname(lua_State *L, long code) {
  for (size_t i = 0; i < sizeof verify_names / sizeof verify_names[0]; i++) {
    if (verify_names[i].code == code) {
      lua_pushstring(L, verify_names[i].name);
      return;
    }
  }
  lua_pushfstring(L, "X509_V_ERR_%d", (int)code);
}

/* OpenSSL names no reason, but its reason texts are the names of its
** SSL_R_* macros in lower case ("wrong version number"): push the name
** back ("WRONG_VERSION_NUMBER"). */
void tls_pushreason(lua_State *L, unsigned long e) {
  const char *text = ERR_reason_error_string(e);
  if (text == NULL) {
    lua_pushfstring(L, "ERROR_%d", (int)ERR_GET_REASON(e));
    return;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const char *p = text; *p; p++) {
    char ch = *p == ' ' || *p == '-' ? '_' : *p;
    luaL_addchar(&b, (char)(ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch));
  }
  luaL_pushresult(&b);
}

int tlsconn_pusherr(lua_State *L, LTLS *t, int err) {
  if (err != LSOCK_ETLS) return err_push(L, err);
  luaL_pushfail(L);
  switch (t->fail) {
    case TLSE_VERIFY:
      lua_pushfstring(L, "certificate verify failed: %s",
                      X509_verify_cert_error_string(t->detail));
      push_verifyname(L, t->detail);
      break;
    case TLSE_EOF:
      lua_pushliteral(L, "EOF occurred in violation of protocol");
      lua_pushliteral(L, "UNEXPECTED_EOF");
      break;
    case TLSE_CALLBACK:
      lua_pushfstring(L, "sni_callback failed: %s", t->cbmsg ? t->cbmsg : "?");
      lua_pushliteral(L, "SNI_CALLBACK_FAILED");
      break;
    default: {
      const char *text = ERR_reason_error_string((unsigned long)t->detail);
      lua_pushstring(L, text ? text : "TLS protocol error");
      tls_pushreason(L, (unsigned long)t->detail);
    }
  }
  return 3;
}

/* ---- the peer's certificate ------------------------------------------ */

/* Push {commonName = ..., organizationName = ...} for an X509 name. */
static void push_x509name(lua_State *L, const X509_NAME *name) {
  int n = X509_NAME_entry_count(name);
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
    char key[80];
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    if (nid != NID_undef) snprintf(key, sizeof key, "%s", OBJ_nid2ln(nid));
    else OBJ_obj2txt(key, sizeof key, X509_NAME_ENTRY_get_object(e), 1);
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    if (len < 0) continue;
    lua_pushlstring(L, (const char *)utf8, (size_t)len);
    OPENSSL_free(utf8);
    lua_setfield(L, -2, key);
  }
}

/* Push one subjectAltName entry as {"DNS", "localhost"}, or nothing
** (returns 0) for the kinds Python does not show either. */
static int push_altname(lua_State *L, const GENERAL_NAME *g) {
  char ip[INET6_ADDRSTRLEN];
  const ASN1_STRING *s = NULL;
  const char *kind = NULL;
  switch (g->type) {
    case GEN_DNS: kind = "DNS"; s = g->d.dNSName; break;
    case GEN_EMAIL: kind = "email"; s = g->d.rfc822Name; break;
    case GEN_URI: kind = "URI"; s = g->d.uniformResourceIdentifier; break;
    case GEN_IPADD: kind = "IP Address"; s = g->d.iPAddress; break;
    default: return 0;
  }
  lua_createtable(L, 2, 0);
  lua_pushstring(L, kind);
  lua_rawseti(L, -2, 1);
  int len = ASN1_STRING_length(s);
  const unsigned char *p = ASN1_STRING_get0_data(s);
  if (g->type != GEN_IPADD) lua_pushlstring(L, (const char *)p, (size_t)len);
  else if (len == 4 || len == 16) lua_pushstring(L, inet_ntop(len == 4 ? AF_INET : AF_INET6, p, ip, sizeof ip));
  else lua_pushliteral(L, "<invalid>");
  lua_rawseti(L, -2, 2);
  return 1;
}

static void push_altnames(lua_State *L, X509 *x) {
  GENERAL_NAMES *names = (GENERAL_NAMES *)X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  if (names == NULL) return;
  lua_newtable(L);
  int k = 0;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); i++)
    if (push_altname(L, sk_GENERAL_NAME_value(names, i))) lua_rawseti(L, -2, ++k);
  GENERAL_NAMES_free(names);
  lua_setfield(L, -2, "subjectAltName");
}

/* Push the text OpenSSL prints for a time: "Jan  1 00:00:00 2026 GMT". */
static void push_time(lua_State *L, const ASN1_TIME *tm, const char *field) {
  BIO *b = BIO_new(BIO_s_mem());
  char *p;
  if (b != NULL && ASN1_TIME_print(b, tm) == 1) {
    long n = BIO_get_mem_data(b, &p);
    lua_pushlstring(L, p, (size_t)n);
    lua_setfield(L, -2, field);
  }
  BIO_free(b);
}

static void push_serial(lua_State *L, X509 *x) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  if (hex) {
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "serialNumber");
  }
  OPENSSL_free(hex);
  BN_free(bn);
}

static void push_certtable(lua_State *L, X509 *x) {
  lua_createtable(L, 0, 7);
  push_x509name(L, X509_get_subject_name(x));
  lua_setfield(L, -2, "subject");
  push_x509name(L, X509_get_issuer_name(x));
  lua_setfield(L, -2, "issuer");
  push_altnames(L, x);
  push_time(L, X509_get0_notBefore(x), "notBefore");
  push_time(L, X509_get0_notAfter(x), "notAfter");
  push_serial(L, x);
  lua_pushinteger(L, X509_get_version(x) + 1);
  lua_setfield(L, -2, "version");
}

/* The DER form, for getpeercert(true). */
static void push_der(lua_State *L, X509 *x) {
  int len = i2d_X509(x, NULL);
  if (len <= 0) {
    lua_pushnil(L);
    return;
  }
  luaL_Buffer b;
  unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, (size_t)len);
  i2d_X509(x, &p);
  luaL_pushresultsize(&b, (size_t)len);
}

/* Protected part of getpeercert: the X509 at 1 (light), binary at 2. */
static int peercert_p(lua_State *L) {
  X509 *x = (X509 *)lua_touserdata(L, 1);
  if (lua_toboolean(L, 2)) push_der(L, x);
  else push_certtable(L, x);
  return 1;
}

/* As Python: a certificate nobody verified (the context in use says
** CERT_NONE) is not described, {} stands for it; its DER is given. */
int tlsconn_pushpeercert(lua_State *L, LTLS *t, int binary) {
  X509 *x = t->ssl && t->handshaken ? SSL_get1_peer_certificate(t->ssl) : NULL;
  if (x == NULL) {
    lua_pushnil(L);
    return 1;
  }
  if (!binary && !(SSL_CTX_get_verify_mode(SSL_get_SSL_CTX(t->ssl)) & SSL_VERIFY_PEER)) {
    X509_free(x);
    lua_newtable(L);
    return 1;
  }
  lua_pushcfunction(L, peercert_p);   /* a memory error must not leak x */
  lua_pushlightuserdata(L, x);
  lua_pushboolean(L, binary);
  int status = lua_pcall(L, 2, 1, 0);
  X509_free(x);
  ERR_clear_error();
  if (status != LUA_OK) lua_error(L);
  return 1;
}

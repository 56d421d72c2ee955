/*
** tls.h - what the three TLS files share (the module "socket.ssl").
**
** tls_ctx.c  the module table and the context object (an SSL_CTX with
**            Python's fields: verify_mode, check_hostname, versions,
**            ALPN, SNI callback, handshake_timeout).
** tls_conn.c one TLS connection over a socket's descriptor: our own BIO
**            (recv/send with MSG_NOSIGNAL, bytes a plain stream had read
**            ahead fed first), the SSL object, the "try" steps the I/O
**            driver runs, the errors as Lua values, certificates as tables.
** tls_sock.c the Lua TLS socket: wrap_socket, its methods, unwrap.
**
** A TLS socket is an LSocket (its first member), so the socket methods
** that need no TLS (fileno, settimeout, getpeername, setsockopt...) work
** on it unchanged, and its LSocket.tls flag tells select and streams to
** read through TLS.  Only this layer includes OpenSSL's headers.
*/
#ifndef TLS_H
#define TLS_H

#include "tls_lib.h"   /* OpenSSL, as pointers loaded at first use */
#include "socket.h"

#define LSOCK_TLSCONTEXT "luasock.ssl.context"
#define LSOCK_TLSSOCKET  "luasock.ssl.socket"

/* Python's numbering of the constants, so that code ported keeps them. */
enum { PROTOCOL_TLS_CLIENT = 16, PROTOCOL_TLS_SERVER = 17 };
enum { CERT_NONE = 0, CERT_OPTIONAL = 1, CERT_REQUIRED = 2 };

/* A context: the userdata behind ssl.SSLContext.  Its user value 1 is a
** table holding what Lua owns for it (sni_callback). */
typedef struct LTLSContext {
  SSL_CTX *ctx;
  int server;               /* made with PROTOCOL_TLS_SERVER */
  int check_hostname;
  int verify_mode;          /* CERT_* */
  double handshake_timeout; /* seconds; bounds accepted sockets' handshakes */
  unsigned char *alpn;      /* a server's protocols, wire format, or NULL */
  size_t alpnlen;
} LTLSContext;

/* The outcome of one try step, what the I/O driver acts on.  TLS_AGAIN:
** a syscall under it failed with an error the driver tries again at once
** (wait_again); tlsconn_err gives it. */
enum { TLS_DONE = 0, TLS_WANTREAD, TLS_WANTWRITE, TLS_FAILED, TLS_AGAIN };

/* What a TLS_FAILED was, kept in the connection until pushed. */
enum { TLSE_NONE = 0, TLSE_SYS, TLSE_VERIFY, TLSE_EOF, TLSE_PROTO, TLSE_CALLBACK };

/* The userdata behind a TLS socket.  User values: 1 the context it was
** made with, 2 the context in use (an SNI callback may switch it),
** 3 server_hostname (or nil). */
typedef struct LTLS {
  LSocket s;                /* first: a TLS socket is a socket */
  SSL *ssl;                 /* NULL on a listening socket and once closed */
  LTLSContext *ctx;         /* the context in use (user value 2) */
  unsigned server_side : 1, handshaken : 1, ragged_ok : 1,
           lazy : 1;        /* do_handshake_on_connect was false */
  int fail;                 /* TLSE_*: what the last TLS_FAILED was */
  long detail;              /* its errno, verify result or error code */
  char *cbmsg;              /* the error of a failed SNI callback */
  double hs_deadline;       /* of the handshake under way (0: none yet) */
  lua_State *L;             /* during an SSL call, for the SNI callback */
  char *pre;                /* ciphertext read ahead by a plain stream */
  size_t prelen, prepos;    /* pre[prepos .. prelen) not yet given to SSL */
  lua_Integer *live;        /* its state's count of SSL objects alive */
} LTLS;


/* ---- tls_ctx.c -------------------------------------------------------- */
LTLSContext *tlsctx_check(lua_State *L, int idx);
/* The context at idx may serve this end (server_side or not): raises if
** a server context would wrap a client socket or the other way round. */
/* Push OpenSSL's reason name for error e ("WRONG_VERSION_NUMBER"). */
void tls_pushreason(lua_State *L, unsigned long e);
void tlsctx_checkside(lua_State *L, int idx, LTLSContext *c, int server_side);
/* Push a context: "client" or "server", as create_default_context. */
LTLSContext *tlsctx_pushdefault(lua_State *L, int server);

/* ---- tls_conn.c ------------------------------------------------------- */
/* Make t's SSL object over its descriptor with context c: 0, or -1 with
** the error in t (out of memory). */
int tlsconn_new(LTLS *t, LTLSContext *c, const char *hostname);
void tlsconn_free(LTLS *t);                       /* idempotent */
/* Hand the connection bytes read ahead by a plain stream (copied). */
int tlsconn_prefeed(LTLS *t, const char *p, size_t len);
/* Try steps: each makes one non-blocking attempt and says TLS_DONE,
** TLS_WANTREAD, TLS_WANTWRITE, TLS_AGAIN or TLS_FAILED (details kept
** in t).
** read: *n == 0 with TLS_DONE is the end of the stream. */
int tlsconn_handshake(lua_State *L, LTLS *t);
int tlsconn_read(lua_State *L, LTLS *t, char *buf, size_t len, size_t *n);
int tlsconn_write(lua_State *L, LTLS *t, const char *buf, size_t len, size_t *n);
int tlsconn_shutdown(lua_State *L, LTLS *t);
/* close()'s best effort: send close_notify without waiting (a full
** socket drops it), trying again while a signal interrupts the send. */
void tlsconn_notify(LTLS *t);
/* Decrypted bytes OpenSSL holds, or a record it can decrypt without
** reading the descriptor: such a socket is readable already. */
int tlsconn_pending(const LTLS *t);
/* The C error int of t's last TLS_FAILED or TLS_AGAIN: an errno, or
** LSOCK_ETLS. */
int tlsconn_err(const LTLS *t);
/* Push nil, message, code for err (LSOCK_ETLS: from t's details; other
** codes as err_push does); returns 3. */
int tlsconn_pusherr(lua_State *L, LTLS *t, int err);
/* Push the peer's certificate as Python's dict (or DER when binary). */
int tlsconn_pushpeercert(lua_State *L, LTLS *t, int binary);

/* ---- tls_sock.c ------------------------------------------------------- */
/* ctx:wrap_socket(sock, opts), the context at 1, socket at 2. */
int tlssock_wrap(lua_State *L);
/* The LTLS of the TLS socket at idx, or NULL when it is not one. */
LTLS *tlssock_test(lua_State *L, int idx);
void tlssock_open(lua_State *L);                 /* its metatables */
/* The servername callback of server contexts: runs the context's
** sni_callback (in Lua, protected) and switches to the context it returns. */
int tlssock_sni(SSL *ssl, int *alert, void *arg);
/* The registry's weak table from an LTLS (light userdata) to its userdata,
** so an OpenSSL callback can hand Lua the socket. */
#define TLS_SOCKETS_KEY "luasock.ssl.sockets"
/* The registry's count of the SSL objects alive in this state (a
** lua_Integer in a userdata; ssl._live_objects()), so a test can tell
** that collected TLS sockets freed theirs. */
#define TLS_LIVE_KEY "luasock.ssl.live"

#endif

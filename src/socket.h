/*
** socket.h - the socket object (LSocket, socket.c) and what the module
** files give luaopen_socket: their function tables and openers.  The
** module layer sits on the driver (core/wait.h) and the core below it
** (docs/architecture.md).  Nothing here is public: embedders see only
** luasock.h.
*/
#ifndef LSOCK_SOCKET_H
#define LSOCK_SOCKET_H

#include <sys/socket.h>

#include "lua.h"
#include "lauxlib.h"

#include "luasock.h"
#include "core/loop.h"
#include "core/wait.h"

/* Metatable names (luaL_newmetatable stores them in __name). */
#define LSOCK_SOCKET  "luasock.socket"
#define LSOCK_STREAM  "luasock.stream"
#define LSOCK_ADDRESS "luasock.address"

/* The userdata behind every socket object. */
typedef struct LSocket {
  Watch w;              /* w.fd == -1 means closed */
  int family, type, proto;
  unsigned char tls;    /* a TLS socket: an LTLS (tls.h) begins with this */
  double timeout;       /* < 0 blocking, 0 non-blocking, > 0 seconds */
  const void *meta;     /* its metatable, for sock_test */
} LSocket;

/* ---- socket.c: the object ---------------------------------------- */
/* The socket at idx, or NULL; a TLS socket is one too (a larger block
** that begins with an LSocket). */
LSocket *sock_test(lua_State *L, int idx);
LSocket *sock_check(lua_State *L, int idx);      /* any socket, maybe closed */
LSocket *sock_checkopen(lua_State *L, int idx);  /* raises on a closed one */
/* Push the template of the socket metatables: the metamethods, and in
** __index the methods of every file; made at the first socket. */
void sock_pushtemplate(lua_State *L);
/* Push a new socket in the closed state with the default timeout; the
** caller then stores the descriptor in ->w.fd (so a memory error can never
** orphan a descriptor). */
LSocket *sock_push(lua_State *L, int family, int type, int proto);
/* An Op (wait.h) for a call on s, the socket at stack index 1 (anchored
** with it), in direction dir, with the MSG_* flags in op->flags:
** MSG_DONTWAIT makes it non-blocking (EAGAIN at once, as in C), else the
** socket's timeout bounds it. */
void sock_opinit(Op *op, LSocket *s, int dir, int flags, OpTry try, OpPush push);
/* The socket of such an Op: its Watch is the socket's first member. */
static inline LSocket *sock_ofop(const Op *op) {
  return (LSocket *)op->w;
}

/* ---- tls_ctx.c: the module socket.ssl, which luaopen_socket and
** luasock_openlibs put in package.preload (it is no public entry point) */
int luaopen_socket_ssl(lua_State *L);

/* ---- workers.c: socket.run{workers = N} takes the place of the core's
** socket.run in the module table on top, and adds socket.worker */
void workers_open(lua_State *L);

/* ---- function tables each file contributes to luaopen_socket ------- */
extern const luaL_Reg sockio_methods[];   /* sockio.c: accept, recv, send... */
extern const luaL_Reg addr_funcs[];       /* addr.c: inet_pton, inet_ntop, gethostname */
extern const luaL_Reg resolve_funcs[];    /* resolve.c: getaddrinfo, getnameinfo... */
extern const luaL_Reg msg_methods[];      /* msg.c: sendmsg, recvmsg */
extern const luaL_Reg msg_funcs[];        /* msg.c: send_fds, recv_fds */
extern const luaL_Reg select_funcs[];     /* select.c: select */
extern const luaL_Reg stream_methods[];   /* stream.c: makefile */
/* tls_sock.c: whether s is a TLS socket holding input it can return
** without reading its descriptor (select counts it readable). */
int tls_readable(const LSocket *s);
/* tls_sock.c: a stream's recv and send on a TLS socket (s->tls): 0 with
** *n bytes (a recv's 0: the end of the stream), EAGAIN to wait in the
** call's direction, OP_WANTREAD/OP_WANTWRITE for the other one, or an
** error (LSOCK_ETLS: see its key). */
int tls_streamrecv(lua_State *L, LSocket *s, char *p, size_t len, size_t *n);
int tls_streamsend(lua_State *L, LSocket *s, const char *p, size_t len, size_t *n);
/* stream.c: the streams made from the socket at idx are closed, their
** output sent if it goes without waiting; pushes the input they had read
** and not returned, and returns it (length in *len): a TLS socket taking
** the descriptor over reads those bytes first. */
const char *stream_takeover(lua_State *L, int idx, size_t *len);
/* stream.c: from now on, record the streams made (for stream_takeover);
** socket.ssl calls it when it is loaded: a stream made before is not
** found by a takeover. */
void stream_track(lua_State *L);
/* buffer.c: socket.buffer, recv_into, recvfrom_into */
extern const luaL_Reg buffer_funcs[];
extern const luaL_Reg buffer_methods[];
/* buffer.c: the bytes to send at idx: a string, or a socket.buffer and
** the range i, j at idx+1, idx+2 (string.sub's rules, default the whole);
** sets *len and *next, the index of the argument after them.  Raises on
** anything else. */
const char *buffer_checkbytes(lua_State *L, int idx, size_t *len, int *next);
/* sendfile.c: sock:sendfile; relay.c: socket.relay */
extern const luaL_Reg sendfile_methods[];
extern const luaL_Reg relay_funcs[];
extern const luaL_Reg sync_funcs[];       /* sync.c: queue, event, lock, semaphore */
extern const luaL_Reg signals_funcs[];    /* signals.c: signals */

#endif

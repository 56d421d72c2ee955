/*
** resolve.c - name resolution: the module's getaddrinfo, gethostbyname
** and getnameinfo, and names in the addresses of bind, connect, sendto
** and sendmsg (resolve_run).
**
** Split from addr.c, which converts addresses without the network: every
** lookup here may wait on the network, so it goes through wait_thread and
** runs on a helper thread while the loop goes on, inside a task or out.
** The request (GaiReq, NiReq) lives in a userdata that the call's Op
** (wait.h) points to and anchors, and the job holds until it ended: the
** job writes only into it, so a call that gave up (a deadline scope, a
** cancel, Ctrl-C) leaves it to the job, and its result is dropped.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>

#include "base/errors.h"
#include "base/aux.h"
#include "core/loop.h"
#include "core/wait.h"
#include "socket.h"
#include "addr.h"

#define GAIREQ "luasock.gaireq"   /* metatable of a resolver request (its __gc) */

/* ---- getaddrinfo and gethostbyname, off the loop thread ------------- */

/* A resolver request; it lives in a userdata on the caller's stack so it
** survives the yield while a helper thread fills it in. */
typedef struct GaiReq {
  JobHead head;             /* first: wait_thread's */
  struct addrinfo hints;
  struct addrinfo *res;
  int rc, err;              /* getaddrinfo's result; errno for EAI_SYSTEM */
  const char *host, *serv;  /* into buf, or NULL */
  struct sockaddr_storage *dest;   /* resolve_run: the address whose host it finds */
  Op next;                  /* resolve_run: the call to make once it is known */
  char buf[];               /* host "\0" serv "\0" */
} GaiReq;

/* Free the list a lookup left (the request's head.drop). */
static void gaireq_drop(void *req) {
  GaiReq *r = (GaiReq *)req;
  if (r->res != NULL) freeaddrinfo(r->res);
  r->res = NULL;
}

/* While busy a helper thread may still write res: the loop drops it. */
static int gaireq_gc(lua_State *L) {
  GaiReq *r = (GaiReq *)luaL_checkudata(L, 1, GAIREQ);
  if (!r->head.busy) gaireq_drop(r);
  return 0;
}

/* Runs on a helper thread (or inline). */
static void gai_work(void *arg) {
  GaiReq *r = (GaiReq *)arg;
  r->rc = getaddrinfo(r->host, r->serv, &r->hints, &r->res);
  r->err = errno;
}

/* Push a request for host and serv (either may be NULL), with one user
** value (resolve_run anchors its address there). */
static GaiReq *gaireq_push(lua_State *L, const char *host, const char *serv) {
  size_t hn = host ? strlen(host) + 1 : 0, sn = serv ? strlen(serv) + 1 : 0;
  GaiReq *r = (GaiReq *)lua_newuserdatauv(L, sizeof *r + hn + sn, 1);
  memset(r, 0, sizeof *r);
  r->head.drop = gaireq_drop;
  if (luaL_newmetatable(L, GAIREQ)) {
    lua_pushcfunction(L, gaireq_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (host) r->host = memcpy(r->buf, host, hn);
  if (serv) r->serv = memcpy(r->buf + hn, serv, sn);
  return r;
}


/* One entry of getaddrinfo's list: {family, type, proto, canonname, address}. */
static void push_ai(lua_State *L, const struct addrinfo *ai) {
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, ai->ai_family);
  lua_setfield(L, -2, "family");
  lua_pushinteger(L, ai->ai_socktype);
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, ai->ai_protocol);
  lua_setfield(L, -2, "proto");
  if (ai->ai_canonname != NULL) {
    lua_pushstring(L, ai->ai_canonname);
    lua_setfield(L, -2, "canonname");
  }
  addr_push(L, ai->ai_addr, ai->ai_addrlen);
  lua_setfield(L, -2, "address");
}

/* Run a lookup: the request at stack index idx (anchored by the call)
** goes to work off the loop thread, then push ends the call. */
static int req_run(lua_State *L, int idx, void (*work)(void *), OpPush push) {
  Op op;
  wait_opinit(&op, NULL, push, NULL, WAIT_READ, -1);
  op.anchor[0] = (unsigned char)idx;
  return wait_thread(L, &op, work, idx);
}

/* getaddrinfo's results: the list of entries. */
static int getaddrinfo_push(lua_State *L, Op *op, int err, int nres) {
  (void)nres;
  GaiReq *r = (GaiReq *)op->obj;
  if (err != 0) return err_push(L, err);
  if (r->rc != 0) return err_pushgai(L, r->rc, r->err);
  lua_newtable(L);
  int i = 0;
  for (const struct addrinfo *ai = r->res; ai != NULL; ai = ai->ai_next) {
    push_ai(L, ai);
    lua_rawseti(L, -2, ++i);
  }
  freeaddrinfo(r->res);
  r->res = NULL;
  return 1;
}

/* The service argument: nil, an integer port, or a service name. */
static const char *opt_service(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return NULL;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    addr_checkport(L, arg, arg);
    return lua_pushfstring(L, "%d", (int)lua_tointeger(L, arg));
  }
  return addr_checkcstring(L, arg, arg);
}

/* socket.getaddrinfo(host, port [, family [, type [, proto [, flags]]]]) */
static int lsock_getaddrinfo(lua_State *L) {
  lua_settop(L, 6);                    /* so that pushed values land at 7+ */
  const char *host = lua_isnoneornil(L, 1) ? NULL : addr_checkcstring(L, 1, 1);
  const char *serv = opt_service(L, 2);
  GaiReq *r = gaireq_push(L, host, serv);
  r->hints.ai_family = (int)aux_optint(L, 3, AF_UNSPEC, INT_MIN, INT_MAX);
  r->hints.ai_socktype = (int)aux_optint(L, 4, 0, INT_MIN, INT_MAX);
  r->hints.ai_protocol = (int)aux_optint(L, 5, 0, INT_MIN, INT_MAX);
  r->hints.ai_flags = (int)aux_optint(L, 6, 0, INT_MIN, INT_MAX);
  lua_replace(L, 1);
  lua_settop(L, 1);
  return req_run(L, 1, gai_work, getaddrinfo_push);
}

/* gethostbyname's result: the first IPv4 address as a string. */
static int gethostbyname_push(lua_State *L, Op *op, int err, int nres) {
  (void)nres;
  GaiReq *r = (GaiReq *)op->obj;
  if (err != 0) return err_push(L, err);
  if (r->rc != 0) return err_pushgai(L, r->rc, r->err);
  addr_pushhost(L, r->res->ai_addr);
  return 1;
}

/* socket.gethostbyname(name) -> "a.b.c.d" (IPv4 only, as in Python). */
static int lsock_gethostbyname(lua_State *L) {
  GaiReq *r = gaireq_push(L, addr_checkcstring(L, 1, 1), NULL);
  r->hints.ai_family = AF_INET;
  r->hints.ai_socktype = SOCK_STREAM;
  lua_replace(L, 1);
  lua_settop(L, 1);
  return req_run(L, 1, gai_work, gethostbyname_push);
}

/* ---- names in the addresses of connect and sendto ---------------------- */

/* The host string of the address at idx (a table's [1], or idx), or NULL. */
static const char *address_host(lua_State *L, int idx) {
  const char *host = NULL;
  if (lua_istable(L, idx)) {
    if (lua_rawgeti(L, idx, 1) == LUA_TSTRING) host = lua_tostring(L, -1);
    lua_pop(L, 1);                     /* the table keeps the string alive */
  } else if (lua_type(L, idx) == LUA_TSTRING) {
    host = lua_tostring(L, idx);
  }
  return host;
}

/* A name to look up: not "", "<broadcast>", a literal, or v6 with %scope
** (addr_check parses those without a query). */
static int is_name(const char *host, int family) {
  unsigned char buf[sizeof(struct in6_addr)];
  return host != NULL && host[0] != '\0' && strcmp(host, "<broadcast>") != 0 &&
         strchr(host, '%') == NULL && inet_pton(family, host, buf) != 1;
}

/* Replace the address at idx by a copy whose host is the literal of sa
** (a table stays a table, "host, port" stays two arguments). */
static void replace_host(lua_State *L, int idx, const struct sockaddr *sa) {
  int v6 = sa->sa_family == AF_INET6;
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
  addr_pushhost(L, sa);
  if (!lua_istable(L, idx)) {
    lua_replace(L, idx);
    return;
  }
  lua_createtable(L, 4, 0);
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  for (int i = 2; i <= 4; i++) {
    if (lua_rawgeti(L, idx, i) == LUA_TNIL && i == 4 && v6) {
      lua_pop(L, 1);                   /* a link-local name brings its scope */
      lua_pushinteger(L, in6->sin6_scope_id);
    }
    lua_rawseti(L, -2, i);
  }
  lua_replace(L, idx);
}

/* Put the host of src (same family) into dest, keeping dest's port; an
** IPv6 address without a scope takes src's (a link-local name brings
** its scope). */
static void set_host(struct sockaddr_storage *dest, const struct sockaddr *src) {
  if (src->sa_family == AF_INET) {
    ((struct sockaddr_in *)dest)->sin_addr = ((const struct sockaddr_in *)src)->sin_addr;
    return;
  }
  struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)dest;
  const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)src;
  d6->sin6_addr = s6->sin6_addr;
  if (d6->sin6_scope_id == 0) d6->sin6_scope_id = s6->sin6_scope_id;
}

/* The lookup ended: write its first address into the caller's (on the
** loop's thread: a job that outlives its call must not write there), and
** make the call (r->next) with its two anchors back on the stack (the
** socket; the block holding the address, the request's user value), or
** end it with the error. */
static int lookup_push(lua_State *L, Op *op, int err, int nres) {
  GaiReq *r = (GaiReq *)op->obj;
  Op next = r->next;
  (void)nres;
  if (err != 0) return next.push(L, &next, err, 0);
  if (r->rc != 0) return err_pushgai(L, r->rc, r->err);
  if (r->res->ai_family != r->dest->ss_family) return err_pushgai(L, EAI_FAMILY, 0);
  set_host(r->dest, r->res->ai_addr);
  gaireq_drop(r);                      /* the job is done: its list is ours */
  if (next.w->fd < 0) return next.push(L, &next, LSOCK_ECLOSED, 0);   /* closed meanwhile */
  wait_pushanchor(L, op, 0);
  wait_pushanchor(L, op, 1);
  lua_getiuservalue(L, -1, 1);
  lua_remove(L, -2);
  next.anchor[0] = (unsigned char)(lua_gettop(L) - 1);
  next.anchor[1] = (unsigned char)lua_gettop(L);
  return wait_op(L, &next);
}

int resolve_run(lua_State *L, int idx, int family, struct sockaddr_storage *ss,
             socklen_t *len, Op *op) {
  idx = lua_absindex(L, idx);
  const char *host = address_host(L, idx);
  int rc;
  if ((family != AF_INET && family != AF_INET6) || !is_name(host, family)) {
    rc = addr_check(L, idx, family, ss, len);
    return rc != 0 ? err_pushgai(L, rc, errno) : wait_op(L, op);
  }
  addr_pushhostport(L, idx);
  addr_checkcstring(L, -2, idx);            /* no zero byte in the name */
  lua_pop(L, 2);
  GaiReq *r = gaireq_push(L, host, NULL);   /* host stays alive in the request */
  struct sockaddr_storage any;              /* the port and scope first: misuse raises */
  memset(&any, 0, sizeof any);
  any.ss_family = (sa_family_t)family;
  replace_host(L, idx, (struct sockaddr *)&any);
  if ((rc = addr_check(L, idx, family, ss, len)) != 0) return err_pushgai(L, rc, errno);
  r->hints.ai_family = family;
  r->hints.ai_socktype = SOCK_STREAM;       /* one entry per address */
  r->dest = ss;
  r->next = *op;
  lua_pushvalue(L, op->anchor[1]);
  lua_setiuservalue(L, -2, 1);
  Op look;
  wait_opinit(&look, NULL, lookup_push, op->w, WAIT_READ, -1);
  look.anchor[0] = op->anchor[0];
  look.anchor[1] = (unsigned char)lua_absindex(L, -1);
  return wait_thread(L, &look, gai_work, look.anchor[1]);
}

/* ---- getnameinfo ----------------------------------------------------- */

typedef struct NiReq {
  JobHead head;             /* first: wait_thread's (nothing to drop) */
  struct sockaddr_storage ss;
  socklen_t len;
  int flags, rc, err;
  char host[NI_MAXHOST], serv[NI_MAXSERV];
} NiReq;

static void ni_work(void *arg) {
  NiReq *r = (NiReq *)arg;
  r->rc = getnameinfo((struct sockaddr *)&r->ss, r->len, r->host, sizeof r->host,
                      r->serv, sizeof r->serv, r->flags);
  r->err = errno;
}

static int getnameinfo_push(lua_State *L, Op *op, int err, int nres) {
  (void)nres;
  NiReq *r = (NiReq *)op->obj;
  if (err != 0) return err_push(L, err);
  if (r->rc != 0) return err_pushgai(L, r->rc, r->err);
  lua_pushstring(L, r->host);
  lua_pushstring(L, r->serv);
  return 2;
}

/* The family of the literal host of the address table at idx; raises if
** the host is not a literal (a "%scope" suffix is checked by parsing). */
static int literal_family(lua_State *L, int idx) {
  unsigned char probe[sizeof(struct in6_addr)];
  lua_rawgeti(L, idx, 1);
  const char *host = lua_tostring(L, -1);
  int family = 0;
  if (host != NULL && inet_pton(AF_INET, host, probe) == 1) family = AF_INET;
  else if (host != NULL && (strchr(host, '%') || inet_pton(AF_INET6, host, probe) == 1))
    family = AF_INET6;
  if (family == 0)
    luaL_argerror(L, idx, lua_pushfstring(L, "literal address expected, got '%s'",
                                          host ? host : luaL_typename(L, -1)));
  lua_pop(L, 1);
  return family;
}

/* socket.getnameinfo({host, port [, flowinfo, scope_id]} [, flags]) ->
** host, service.  The host must be a literal (IPv4 or IPv6): it raises
** otherwise, as no forward lookup is wanted here. */
static int lsock_getnameinfo(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int flags = (int)aux_optint(L, 2, 0, INT_MIN, INT_MAX);
  int family = literal_family(L, 1);
  NiReq *r = (NiReq *)lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->flags = flags;
  int rc = addr_checkinet(L, 1, family, &r->ss, &r->len);
  if (rc != 0) return err_pushgai(L, rc, errno);   /* a literal: not expected */
  lua_replace(L, 1);
  lua_settop(L, 1);
  return req_run(L, 1, ni_work, getnameinfo_push);
}

const luaL_Reg resolve_funcs[] = {
  {"getaddrinfo", lsock_getaddrinfo},
  {"getnameinfo", lsock_getnameinfo},
  {"gethostbyname", lsock_gethostbyname},
  {NULL, NULL}
};

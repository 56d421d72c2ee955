/*
** addr.c - addresses: Lua values to struct sockaddr and back, and the
** conversion functions of the module (inet_pton, inet_ntop, gethostname).
**
** In: AF_INET/AF_INET6 take a table {host, port [, flowinfo, scope_id]}
** or "host, port" as two arguments; host is a literal, a name, "" (any)
** or "<broadcast>".  AF_UNIX takes a path string; a leading "@" (or "\0")
** is the abstract namespace.  Out: a table {host, port [, flowinfo, scope_id]}
** with the LSOCK_ADDRESS metatable (.host, .port, tostring), or a plain
** string for AF_UNIX ("@name" for an abstract name).
**
** Lookups that may wait on the network live in resolve.c, which builds on
** the checkers here (addr.h).  addr_check itself cannot yield: a name that
** reaches it (a caller that skipped addr_resolve) is looked up inline,
** which only blocks a loop for names outside /etc/hosts.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/aux.h"
#include "socket.h"
#include "addr.h"

/* ---- the address metatable ----------------------------------------- */

static const char *const field_names[] = {"host", "port", "flowinfo", "scope_id", NULL};

/* The metamethods below are reachable with getmetatable and may be called
** with anything: each checks that its operands are tables. */

/* __index: .host, .port, .flowinfo, .scope_id read [1]..[4]. */
static int addr_index(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  for (int i = 0; k != NULL && field_names[i] != NULL; i++)
    if (strcmp(k, field_names[i]) == 0) {
      lua_rawgeti(L, 1, i + 1);
      return 1;
    }
  lua_pushnil(L);
  return 1;
}

/* __tostring: 127.0.0.1:8001, [::1]:8001, [fe80::1%eth0]:8001. */
static int addr_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_rawgeti(L, 1, 1);
  lua_rawgeti(L, 1, 2);
  lua_rawgeti(L, 1, 4);
  const char *host = luaL_optstring(L, 2, "?");
  lua_Integer port = lua_tointeger(L, 3);
  unsigned scope = (unsigned)lua_tointeger(L, 4);
  char name[IF_NAMESIZE];
  if (strchr(host, ':') == NULL)
    lua_pushfstring(L, "%s:%d", host, (int)port);
  else if (scope == 0)
    lua_pushfstring(L, "[%s]:%d", host, (int)port);
  else if (if_indextoname(scope, name) != NULL)
    lua_pushfstring(L, "[%s%%%s]:%d", host, name, (int)port);
  else
    lua_pushfstring(L, "[%s%%%d]:%d", host, (int)scope, (int)port);
  return 1;
}

/* __eq: same host, port, flowinfo and scope_id. */
static int addr_eq(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  int eq = 1;
  for (int i = 1; i <= 4 && eq; i++) {
    lua_rawgeti(L, 1, i);
    lua_rawgeti(L, 2, i);
    eq = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  lua_pushboolean(L, eq);
  return 1;
}

static const luaL_Reg addr_metamethods[] = {
  {"__index", addr_index},
  {"__tostring", addr_tostring},
  {"__eq", addr_eq},
  {NULL, NULL}
};

/* Set the address metatable (made on first use) on the table on top. */
static void addr_setmeta(lua_State *L) {
  if (luaL_newmetatable(L, LSOCK_ADDRESS))
    luaL_setfuncs(L, addr_metamethods, 0);
  lua_setmetatable(L, -2);
}

/* ---- sockaddr to Lua ------------------------------------------------ */

/* AF_UNIX: the path as a string; "" for an unnamed socket; an abstract
** name as "@name" (its leading NUL shown as '@', as ss(8), Go and systemd
** write it; check_unix reads it back), embedded NULs kept. */
static void push_unix(lua_State *L, const struct sockaddr_un *un, socklen_t len) {
  size_t off = offsetof(struct sockaddr_un, sun_path);
  size_t n = len > off ? len - off : 0;
  if (n > sizeof un->sun_path) n = sizeof un->sun_path;
  if (n > 0 && un->sun_path[0] == '\0') {
    lua_pushliteral(L, "@");
    lua_pushlstring(L, un->sun_path + 1, n - 1);
    lua_concat(L, 2);
    return;
  }
  lua_pushlstring(L, un->sun_path, strnlen(un->sun_path, n));   /* a path ends at its NUL */
}

/* Push the host of the AF_INET or AF_INET6 address sa as a literal. */
void addr_pushhost(lua_State *L, const struct sockaddr *sa) {
  char host[INET6_ADDRSTRLEN];
  const void *src = sa->sa_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
  inet_ntop(sa->sa_family, src, host, sizeof host);
  lua_pushstring(L, host);
}

/* {host, port} for AF_INET; {host, port, flowinfo, scope_id} for AF_INET6. */
static void push_inet(lua_State *L, const struct sockaddr *sa) {
  int v6 = sa->sa_family == AF_INET6;
  const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
  lua_createtable(L, v6 ? 4 : 2, 0);
  addr_pushhost(L, sa);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, ntohs(v6 ? in6->sin6_port : in->sin_port));
  lua_rawseti(L, -2, 2);
  if (v6) {
    lua_pushinteger(L, ntohl(in6->sin6_flowinfo));
    lua_rawseti(L, -2, 3);
    lua_pushinteger(L, in6->sin6_scope_id);
    lua_rawseti(L, -2, 4);
  }
  addr_setmeta(L);
}

/* len 0 (e.g. recvfrom on a connected stream) pushes nil; an unknown
** family pushes the raw sockaddr bytes. */
void addr_push(lua_State *L, const struct sockaddr *sa, socklen_t len) {
  if (len < sizeof(sa_family_t))
    lua_pushnil(L);
  else if (sa->sa_family == AF_UNIX)
    push_unix(L, (const struct sockaddr_un *)sa, len);
  else if ((sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) ||
           (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)))
    push_inet(L, sa);
  else                                 /* never past the storage callers pass */
    lua_pushlstring(L, (const char *)sa,
                    len < sizeof(struct sockaddr_storage) ? len : sizeof(struct sockaddr_storage));
}

/* ---- Lua to sockaddr ------------------------------------------------ */

/* Resolve host (a literal or a name) for family into ss; the port is set
** by the caller.  Returns 0 or an EAI_* code.  Blocks on a name. */
static int resolve_host(const char *host, int family, struct sockaddr_storage *ss,
                        socklen_t *len) {
  struct addrinfo hints, *res;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;   /* one entry per address, not three */
  int rc = getaddrinfo(host, NULL, &hints, &res);
  if (rc != 0) return rc;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* The scope of "addr%scope": a decimal index, else an interface name.
** glibc's getaddrinfo takes a name only after a link-local address, so
** "::1%lo" (which addr_tostring prints for ::1 with scope 1) would not
** parse back; here a name goes with any address.  Raises on an empty
** scope or an interface this machine does not have. */
static uint32_t check_scope(lua_State *L, int idx, const char *host, const char *scope) {
  size_t n = strlen(scope);
  if (n > 0 && n <= 10 && strspn(scope, "0123456789") == n) {
    unsigned long long v = strtoull(scope, NULL, 10);
    if (v <= 0xffffffffULL) return (uint32_t)v;
  }
  if (n == 0)
    luaL_argerror(L, idx, lua_pushfstring(L, "empty scope in '%s'", host));
  unsigned index = if_nametoindex(scope);
  if (index == 0)
    luaL_argerror(L, idx, lua_pushfstring(L, "unknown interface '%s' in '%s'", scope, host));
  return (uint32_t)index;
}

/* Fill in6 from host, "addr%scope": addr must be an IPv6 literal (a
** malformed one raises, as inet_pton does), the scope goes in
** sin6_scope_id. */
static void parse_scoped(lua_State *L, int idx, const char *host, int family,
                         struct sockaddr_in6 *in6) {
  const char *pct = strchr(host, '%');
  size_t n = (size_t)(pct - host);
  char addr[INET6_ADDRSTRLEN];
  int ok = family == AF_INET6 && n < sizeof addr;
  if (ok) {
    memcpy(addr, host, n);
    addr[n] = '\0';
    ok = inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1;
  }
  if (!ok)
    luaL_argerror(L, idx, lua_pushfstring(L, "malformed %s address '%s'",
                                          family == AF_INET ? "IPv4" : "IPv6", host));
  in6->sin6_scope_id = check_scope(L, idx, host, pct + 1);
}

/* Fill ss with host for AF_INET or AF_INET6: "" is the any address,
** "<broadcast>" INADDR_BROADCAST, a literal is parsed, a name resolved. */
static int parse_host(lua_State *L, int idx, const char *host, int family,
                      struct sockaddr_storage *ss, socklen_t *len) {
  struct sockaddr_in *in = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  memset(ss, 0, sizeof *ss);
  ss->ss_family = (sa_family_t)family;
  *len = family == AF_INET ? sizeof *in : sizeof *in6;
  void *dst = family == AF_INET ? (void *)&in->sin_addr : (void *)&in6->sin6_addr;
  if (strcmp(host, "<broadcast>") == 0) {
    if (family != AF_INET) luaL_argerror(L, idx, "'<broadcast>' needs AF_INET");
    in->sin_addr.s_addr = htonl(INADDR_BROADCAST);
    return 0;
  }
  if (host[0] == '\0' || inet_pton(family, host, dst) == 1) return 0;  /* any, literal */
  if (strchr(host, '%') != NULL) {     /* v6 with %scope: parsed, never looked up */
    parse_scoped(L, idx, host, family, in6);
    return 0;
  }
  return resolve_host(host, family, ss, len);   /* a name */
}

/* The string at idx, which C will read up to its first NUL: raises
** against arg when it holds one (else "a\0b" would silently mean "a"). */
const char *addr_checkcstring(lua_State *L, int idx, int arg) {
  size_t n;
  const char *p = luaL_checklstring(L, idx, &n);
  if (strlen(p) != n) luaL_argerror(L, arg, "string contains a zero byte");
  return p;
}

/* The port at idx: an integer in 0..65535, else raise against arg. */
int addr_checkport(lua_State *L, int idx, int arg) {
  int ok;
  lua_Integer port = lua_tointegerx(L, idx, &ok);
  if (lua_type(L, idx) != LUA_TNUMBER || !ok)
    luaL_argerror(L, arg, lua_pushfstring(L, "port must be an integer, got %s",
                                          luaL_typename(L, idx)));
  if (port < 0 || port > 65535)
    luaL_argerror(L, arg, lua_pushfstring(L, "port %I out of range 0..65535", port));
  return (int)port;
}

/* Optional integer field [i] of the address table at idx, in 0..max. */
static lua_Integer opt_field(lua_State *L, int idx, int i, lua_Integer max, const char *what) {
  lua_rawgeti(L, idx, i);
  lua_Integer v = lua_isnil(L, -1) ? 0 : lua_tointeger(L, -1);
  if (!lua_isnil(L, -1) && (!lua_isinteger(L, -1) || v < 0 || v > max))
    luaL_argerror(L, idx, lua_pushfstring(L, "%s must be an integer in 0..%I", what, max));
  lua_pop(L, 1);
  return v;
}

/* Push the host and port of the address at idx (a table's [1] and [2],
** or idx and idx+1); raises unless the host is a string. */
void addr_pushhostport(lua_State *L, int idx) {
  int table = lua_istable(L, idx);
  if (!table && lua_type(L, idx) != LUA_TSTRING)
    luaL_typeerror(L, idx, "address ({host, port} or host, port)");
  if (table) {
    lua_rawgeti(L, idx, 1);
    lua_rawgeti(L, idx, 2);
  } else {                             /* idx + 1 may be the first free slot */
    int none = idx + 1 > lua_gettop(L);
    lua_pushvalue(L, idx);
    if (none) lua_pushnil(L);
    else lua_pushvalue(L, idx + 1);
  }
  if (lua_type(L, -2) != LUA_TSTRING)
    luaL_argerror(L, idx, lua_pushfstring(L, "host must be a string, got %s",
                                          luaL_typename(L, -2)));
  addr_checkcstring(L, -2, idx);
}

/* Set the port, and for IPv6 flowinfo and scope_id (0: keep the scope a
** "%scope" host gave), in an address whose host is already filled in. */
static void set_port(struct sockaddr_storage *ss, int port, lua_Integer flow,
                     lua_Integer scope) {
  if (ss->ss_family == AF_INET) {
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    return;
  }
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  in6->sin6_port = htons((uint16_t)port);
  in6->sin6_flowinfo = htonl((uint32_t)flow);
  if (scope != 0) in6->sin6_scope_id = (uint32_t)scope;
}

/* AF_INET/AF_INET6: {host, port [, flowinfo, scope_id]} at idx, or
** host at idx and port at idx+1.  Everything is checked before a name
** is looked up. */
int addr_checkinet(lua_State *L, int idx, int family, struct sockaddr_storage *ss,
                   socklen_t *len) {
  addr_pushhostport(L, idx);
  int port = addr_checkport(L, -1, idx);
  lua_Integer flow = 0, scope = 0;
  if (family == AF_INET6 && lua_istable(L, idx)) {
    flow = opt_field(L, idx, 3, 0xfffff, "flowinfo");
    scope = opt_field(L, idx, 4, 0xffffffff, "scope_id");
  }
  int rc = parse_host(L, idx, lua_tostring(L, -2), family, ss, len);
  lua_pop(L, 2);
  if (rc == 0) set_port(ss, port, flow, scope);
  return rc;
}

/* AF_UNIX: a path, or a name in the abstract namespace: "@name" or, as in
** Python, "\0name" (kept whole, embedded NULs included, no terminator
** counted).  A file whose name starts with '@' is reached as "./@name". */
static void check_unix(lua_State *L, int idx, struct sockaddr_storage *ss, socklen_t *len) {
  size_t n;
  const char *path = luaL_checklstring(L, idx, &n);
  struct sockaddr_un *un = (struct sockaddr_un *)ss;
  int abstract = n > 0 && (path[0] == '\0' || path[0] == '@');
  size_t max = abstract ? sizeof un->sun_path : sizeof un->sun_path - 1;
  if (n > max)
    luaL_argerror(L, idx, lua_pushfstring(L, "unix path too long (%d bytes, at most %d)",
                                          (int)n, (int)max));
  if (!abstract && strlen(path) != n)
    luaL_argerror(L, idx, "unix path contains a zero byte");
  memset(ss, 0, sizeof *ss);
  un->sun_family = AF_UNIX;
  memcpy(un->sun_path, path, n);
  if (abstract) un->sun_path[0] = '\0';   /* '@' stands for it */
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract || n == 0 ? 0 : 1));
}

int addr_check(lua_State *L, int idx, int family, struct sockaddr_storage *ss,
               socklen_t *len) {
  idx = lua_absindex(L, idx);
  if (family == AF_UNIX) {
    check_unix(L, idx, ss, len);
    return 0;
  }
  if (family != AF_INET && family != AF_INET6)
    luaL_error(L, "addresses of family %d are not supported", family);
  return addr_checkinet(L, idx, family, ss, len);
}

/* ---- inet_pton, inet_ntop, gethostname ------------------------------ */

static int check_inetfamily(lua_State *L, int arg) {
  int family = (int)aux_checkint(L, arg, INT_MIN, INT_MAX);
  luaL_argcheck(L, family == AF_INET || family == AF_INET6, arg,
                "AF_INET or AF_INET6 expected");
  return family;
}

/* socket.inet_pton(family, text) -> packed bytes; malformed text raises. */
static int lsock_inet_pton(lua_State *L) {
  int family = check_inetfamily(L, 1);
  const char *text = addr_checkcstring(L, 2, 2);
  unsigned char buf[sizeof(struct in6_addr)];
  if (inet_pton(family, text, buf) != 1)
    luaL_argerror(L, 2, lua_pushfstring(L, "malformed %s address '%s'",
                                        family == AF_INET ? "IPv4" : "IPv6", text));
  lua_pushlstring(L, (const char *)buf, family == AF_INET ? 4 : 16);
  return 1;
}

/* socket.inet_ntop(family, bytes) -> text; bytes of the wrong length raise. */
static int lsock_inet_ntop(lua_State *L) {
  int family = check_inetfamily(L, 1);
  size_t n, want = family == AF_INET ? 4 : 16;
  const char *bytes = luaL_checklstring(L, 2, &n);
  char text[INET6_ADDRSTRLEN];
  if (n != want)
    luaL_argerror(L, 2, lua_pushfstring(L, "%d bytes expected, got %d", (int)want, (int)n));
  inet_ntop(family, bytes, text, sizeof text);
  lua_pushstring(L, text);
  return 1;
}

static int lsock_gethostname(lua_State *L) {
  char name[HOST_NAME_MAX + 1];
  if (gethostname(name, sizeof name) != 0) return err_push(L, errno);
  name[HOST_NAME_MAX] = '\0';
  lua_pushstring(L, name);
  return 1;
}

const luaL_Reg addr_funcs[] = {
  {"gethostname", lsock_gethostname},
  {"inet_pton", lsock_inet_pton},
  {"inet_ntop", lsock_inet_ntop},
  {NULL, NULL}
};

/*
** select.c - socket.select(readers, writers [, timeout]) over sockets,
** integer descriptors and objects with a fileno method, as Python's.
**
** Readiness is asked of poll(2) with a zero timeout, so there is no
** FD_SETSIZE limit.  Waiting goes through the retry driver (wait_op):
** the descriptors are put in a private epoll set, whose own descriptor
** turns readable when any of them is ready, and the driver waits on that
** one descriptor.  Inside a task the other tasks therefore run meanwhile.
**
** A listed socket that another task closes (or detaches) while select
** waits would only leave the epoll set (the kernel drops a closed fd) and
** wake no one; so a waiting select is a close listener of the loop
** (loop_listen), and select then returns nil, "closed", EBADF, as any
** other wait on a socket closed meanwhile does.
** The caller finds which one by its fileno() of -1.  The listed values
** are kept in select's own table meanwhile: the user may empty his lists,
** and a listed socket must not be collected under us.
**
** Naive on purpose: the set is rebuilt on every call (O(n) epoll_ctl), and
** a close scans every waiting select; a program that selects over
** thousands of fds in a loop wants tasks.
*/
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>

#include "base/errors.h"
#include "core/loop.h"
#include "core/wait.h"
#include "socket.h"

#define LSOCK_SELECTSET "luasock.selectset"

/* Stack slots of a select call. */
enum { READERS = 1, WRITERS = 2, SET_IDX = 4 };

/* The state of one select call, a userdata at SET_IDX whose user value
** holds the entries (readers then writers): the socket Watch of each
** entry (NULL for an integer or a fileno object), their pollfds, and the
** epoll set made for waiting (its fd -1 until the first wait). */
typedef struct SelectSet {
  Watch w;
  Listener closer;                 /* listening while armed */
  int nr, nw;
  struct pollfd *p;                /* nr + nw, after ws */
  Watch *ws[];
} SelectSet;

/* A socket is closing: if it is listed, wake the select (select_k then
** sees the closed entry). */
static void set_closing(Listener *l, const Watch *w) {
  SelectSet *set = (SelectSet *)((char *)l - offsetof(SelectSet, closer));
  for (int i = 0; i < set->nr + set->nw; i++) {
    if (set->ws[i] == w) {
      loop_wake(&set->w);
      return;
    }
  }
}

/* Stop listening, drop the epoll set from the loop and close it;
** idempotent. */
static void set_release(lua_State *L, SelectSet *set) {
  if (set->w.fd < 0) return;
  loop_unlisten(&set->closer);
  loop_closewatch(L, &set->w);
}

static int set_gc(lua_State *L) {
  set_release(L, (SelectSet *)luaL_checkudata(L, 1, LSOCK_SELECTSET));
  return 0;
}

/* Push a SelectSet for nr readers and nw writers, with an empty table of
** entries as user value (the __gc closes its epoll fd if the call ends in
** an error or the task is killed). */
static SelectSet *set_push(lua_State *L, int nr, int nw) {
  size_t n = (size_t)nr + (size_t)nw;
  size_t size = sizeof(SelectSet) + n * (sizeof(Watch *) + sizeof(struct pollfd));
  SelectSet *set = (SelectSet *)lua_newuserdatauv(L, size, 1);
  memset(set, 0, size);
  set->w.fd = -1;
  set->closer.closing = set_closing;
  set->nr = nr;
  set->nw = nw;
  set->p = (struct pollfd *)(set->ws + n);
  if (luaL_newmetatable(L, LSOCK_SELECTSET)) {
    lua_pushcfunction(L, set_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_createtable(L, (int)n, 0);
  lua_setiuservalue(L, -2, 1);
  return set;
}

/* Length of the list at arg; nil counts as an empty list. */
static int list_len(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return 0;
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_Integer n = luaL_len(L, arg);
  luaL_argcheck(L, n >= 0 && n <= INT_MAX / 2, arg, "list too long");
  return (int)n;
}

static int bad_entry(lua_State *L, int arg, int i, const char *msg) {
  return luaL_error(L, "bad entry #%d in argument #%d to 'select' (%s)", i, arg, msg);
}

/* The descriptor of the value on top of the stack (entry i of list arg):
** an open socket (its Watch goes to *w), a non-negative integer, or what
** its fileno method returns.  Raises on anything else; pops nothing. */
static int entry_fd(lua_State *L, int arg, int i, Watch **w) {
  LSocket *s = sock_test(L, -1);
  lua_Integer fd = -1;
  if (s != NULL) {
    if (s->w.fd < 0) luaL_error(L, "attempt to use a closed socket");
    *w = &s->w;
    return s->w.fd;
  }
  if (lua_isinteger(L, -1)) {
    fd = lua_tointeger(L, -1);
  } else if (lua_istable(L, -1) || lua_isuserdata(L, -1)) {
    lua_getfield(L, -1, "fileno");
    if (!lua_isfunction(L, -1)) bad_entry(L, arg, i, "object without a fileno method");
    lua_pushvalue(L, -2);
    lua_call(L, 1, 1);
    if (lua_isinteger(L, -1)) fd = lua_tointeger(L, -1);
    lua_pop(L, 1);
  } else {
    bad_entry(L, arg, i, "socket, integer or object with fileno expected");
  }
  if (fd < 0 || fd > INT_MAX) bad_entry(L, arg, i, "invalid file descriptor");
  return (int)fd;
}

/* Fill n entries of set from position first on, from the list at arg,
** asking for events; each value goes to the table of entries (the
** user value of the set, on top of the stack). */
static void set_fill(lua_State *L, SelectSet *set, int first, int arg, int n, short events) {
  for (int i = 0; i < n; i++) {
    lua_geti(L, arg, i + 1);
    set->p[first + i].fd = entry_fd(L, arg, i + 1, &set->ws[first + i]);
    set->p[first + i].events = events;
    lua_rawseti(L, -2, first + i + 1);
  }
}

/* Whether a task closed a listed socket since the call began. */
static int set_closed(const SelectSet *set) {
  for (int i = 0; i < set->nr + set->nw; i++)
    if (set->ws[i] != NULL && set->ws[i]->fd < 0) return 1;
  return 0;
}

static uint32_t epoll_events(short events) {
  return events == POLLIN ? EPOLLIN : EPOLLOUT;
}

/* Make the epoll set the driver waits on; returns 0 or an errno.  A fd
** listed twice (or as reader and writer) is added once, then modified to
** the union of the events asked for it (the scan runs for those only). */
static int set_arm(lua_State *L, SelectSet *set) {
  if (set->w.fd >= 0) return 0;
  set->w.fd = epoll_create1(EPOLL_CLOEXEC);
  if (set->w.fd < 0) return errno;
  for (int i = 0; i < set->nr + set->nw; i++) {
    int fd = set->p[i].fd;
    struct epoll_event ev = { .events = epoll_events(set->p[i].events), .data.fd = fd };
    if (epoll_ctl(set->w.fd, EPOLL_CTL_ADD, fd, &ev) == 0) continue;
    if (errno != EEXIST) return errno;
    for (int j = 0; j < i; j++)
      if (set->p[j].fd == fd) ev.events |= epoll_events(set->p[j].events);
    if (epoll_ctl(set->w.fd, EPOLL_CTL_MOD, fd, &ev) < 0) return errno;
  }
  loop_listen(L, &set->closer);   /* from now on, closing a listed socket wakes us */
  return 0;
}

/* Push a list of the n entries from position first on (in the table
** of entries, on top of the stack) whose revents hold any of mask, in
** their order. */
static void push_ready(lua_State *L, const SelectSet *set, int first, int n, short mask) {
  lua_newtable(L);
  int k = 0;
  for (int i = first; i < first + n; i++) {
    if (!(set->p[i].revents & mask)) continue;
    lua_rawgeti(L, -2, i + 1);
    lua_rawseti(L, -2, ++k);
  }
}

/* Push the two result lists: the ready entries of the set (op's anchor 0,
** whose user value is the table of entries). */
static void push_results(lua_State *L, Op *op, SelectSet *set) {
  wait_pushanchor(L, op, 0);
  lua_getiuservalue(L, -1, 1);   /* set, entries */
  push_ready(L, set, 0, set->nr, POLLIN | POLLHUP | POLLERR);
  lua_insert(L, -2);             /* set, readers, entries */
  push_ready(L, set, set->nr, set->nw, POLLOUT | POLLHUP | POLLERR);
  lua_remove(L, -2);
  lua_remove(L, -3);             /* readers, writers */
}

/* Readers that are TLS sockets holding bytes already decrypted (or read
** ahead) are readable, though their descriptor may have nothing: mark
** them; returns how many were marked. */
static int tls_ready(SelectSet *set) {
  int n = 0;
  for (int i = 0; i < set->nr; i++) {
    if (set->ws[i] == NULL || (set->p[i].revents & POLLIN)) continue;
    if (tls_readable((LSocket *)set->ws[i])) {   /* a socket's Watch begins it */
      set->p[i].revents |= POLLIN;
      n++;
    }
  }
  return n;
}

/* One poll without waiting: the results when something is ready; else
** the epoll set is made (once) and the driver waits on it.  A listed
** socket closed meanwhile ends the call (its fd may be reused). */
static int select_try(lua_State *L, Op *op) {
  SelectSet *set = (SelectSet *)op->obj;
  if (set_closed(set)) return LSOCK_ECLOSED;
  int n = poll(set->p, (nfds_t)(set->nr + set->nw), 0);
  if (n < 0) return errno;
  n += tls_ready(set);
  for (int i = 0; n > 0 && i < set->nr + set->nw; i++)
    if (set->p[i].revents & POLLNVAL) return EBADF;
  if (n > 0) {
    push_results(L, op, set);
    return 0;
  }
  if (op->timeout && op->deadline == 0) return EAGAIN;   /* timeout 0: poll only */
  int err = set_arm(L, set);
  return err ? err : OP_WANTREAD;
}

/* The end of a select: the set is let go; a timeout (or nothing ready
** for timeout 0) gives two empty lists. */
static int select_push(lua_State *L, Op *op, int err, int nres) {
  set_release(L, (SelectSet *)op->obj);
  if (err == LSOCK_ETIMEOUT || err == EAGAIN) {
    lua_newtable(L);
    lua_newtable(L);
    return 2;
  }
  return wait_pushresults(L, op, err, nres);
}

/* socket.select(readers, writers [, timeout]): nil or no timeout waits
** for ever, 0 only polls; a negative timeout raises. */
static int lsock_select(lua_State *L) {
  double t = -1;
  if (!lua_isnoneornil(L, 3)) {
    t = luaL_checknumber(L, 3);
    luaL_argcheck(L, t >= 0, 3, "timeout must be non-negative");
  }
  int nr = list_len(L, READERS), nw = list_len(L, WRITERS);
  lua_settop(L, 3);
  SelectSet *set = set_push(L, nr, nw);   /* SET_IDX */
  lua_getiuservalue(L, SET_IDX, 1);
  set_fill(L, set, 0, READERS, nr, POLLIN);
  set_fill(L, set, nr, WRITERS, nw, POLLOUT);
  lua_pop(L, 1);
  Op op;
  wait_opinit(&op, select_try, select_push, &set->w, WAIT_READ, t);
  op.obj = set;
  op.anchor[0] = SET_IDX;
  return wait_op(L, &op);
}

const luaL_Reg select_funcs[] = {
  {"select", lsock_select},
  {NULL, NULL}
};

/*
** wait.c - the one wait point.
**
** Every operation that may block comes here after its syscall said
** EAGAIN.  Inside a task the wait is handed to the scheduler (loop.c) and
** the calling C function yields with a continuation; outside a task we
** poll(2) that one descriptor, while the loop runs the tasks if there are
** any (loop_turn).  The caller cannot tell the difference.
*/
#include <errno.h>
#include <poll.h>

#include "lsock.h"

/* Outside a task, with tasks to run, the loop turns while we wait
** (loop_turn); else, or once no task is left, poll w alone (or nothing,
** w NULL).  A task that closed w meanwhile gives LSOCK_ECLOSED: w->fd is
** read again here, as its number may name another socket by now.  EINTR
** retried unless it was Ctrl-C. */
static int wait_watch(lua_State *L, Watch *w, short events, double deadline) {
  int err = loop_turn(L, w, events, deadline);
  if (err != EAGAIN) return err;
  if (w != NULL && w->fd < 0) return LSOCK_ECLOSED;   /* no Lua code runs below */
  struct pollfd p = { w != NULL ? w->fd : -1, events, 0 };
  for (;;) {
    interrupt_check(L);   /* came before the poll */
    int n = poll(&p, w != NULL ? 1 : 0, clock_ms(deadline));
    if (n > 0) return 0;                 /* ready, or an error the syscall will report */
    if (n == 0) {
      if (deadline >= 0 && clock_now() < deadline) continue;  /* woke early */
      return LSOCK_ETIMEOUT;
    }
    if (errno != EINTR) return errno;
    interrupt_check(L);
  }
}

int wait_fdready(lua_State *L, int fd, short events, double deadline) {
  Watch w = { .fd = fd };   /* nobody closes it: only its number counts */
  return wait_watch(L, fd >= 0 ? &w : NULL, events, deadline);
}

/* The task to park, or NULL to block here: outside a task, and also
** inside one where a C function without continuation (gsub's callback,
** require, a metamethod called from C) forbids the yield. */
static Task *task_to_park(lua_State *L) {
  Task *t = loop_current(L);
  return t != NULL && lua_isyieldable(L) ? t : NULL;
}

int wait_changed(lua_State *L) {
  return luaL_error(L, "internal state of a waiting call was changed");
}

void *wait_block(lua_State *L, int idx, size_t size) {
  if (lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) != size) wait_changed(L);
  return lua_touserdata(L, idx);
}

void *wait_same(lua_State *L, int idx, const void *p, const char *tname) {
  void *q = luaL_testudata(L, idx, tname);
  if (q == NULL || q != p) wait_changed(L);
  return q;
}

/* Callers read their deadline back from a stack slot: no code of ours
** makes a NaN (timeouts reject it), so one means debug.setlocal changed
** the slot; it would never expire and clock_ms could not convert it. */
static void check_deadline(lua_State *L, double deadline) {
  if (deadline != deadline) wait_changed(L);
}

int wait_fd(lua_State *L, Watch *w, int dir, double deadline,
            lua_KContext ctx, lua_KFunction k) {
  int cut;
  check_deadline(L, deadline);
  if (deadline == 0) return EAGAIN;   /* non-blocking: report as Python does */
  deadline = scope_deadline(L, deadline, &cut);
  if (cut && clock_now() >= deadline) return LSOCK_ETIMEOUT;   /* the scope ended */
  Task *t = task_to_park(L);
  if (t == NULL) return wait_watch(L, w, dir == WAIT_READ ? POLLIN : POLLOUT, deadline);
  int err = loop_park(t, w, dir, deadline);
  if (err) return err;
  return lua_yieldk(L, 0, ctx, k);
}

int wait_until(lua_State *L, double deadline, lua_KContext ctx, lua_KFunction k) {
  int cut;
  check_deadline(L, deadline);
  deadline = scope_deadline(L, deadline, &cut);
  if (cut && clock_now() >= deadline) return LSOCK_ETIMEOUT;   /* the scope ended */
  Task *t = task_to_park(L);
  if (t == NULL) {
    int err = wait_watch(L, NULL, 0, deadline);
    return err == LSOCK_ETIMEOUT && !cut ? 0 : err;
  }
  loop_park(t, NULL, WAIT_READ, deadline);   /* cannot fail without a watch */
  return lua_yieldk(L, 0, ctx, k);
}

int wait_thread(lua_State *L, void (*work)(void *), void *arg,
                lua_KContext ctx, lua_KFunction k) {
  Task *t = task_to_park(L);
  if (t == NULL || loop_parkthread(t, work, arg) != 0) {
    work(arg);   /* outside a task, or no helper thread: inline */
    return 0;
  }
  return lua_yieldk(L, 0, ctx, k);
}

int wait_idle(lua_State *L, Watch *w, int dir, double deadline) {
  return (w->idle & (1 << dir)) && deadline != 0 && task_to_park(L) != NULL;
}

void wait_setidle(Watch *w, int dir) {
  if (!(w->idle & WATCH_HUP)) w->idle |= (unsigned char)(1 << dir);
}

int wait_resumed(lua_State *L, int status) {
  if (status != LUA_YIELD) return 0;
  return loop_outcome(loop_current(L));
}

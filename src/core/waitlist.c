/*
** waitlist.c - FIFO lists of waiting calls, for waits without a
** descriptor: queues, events, locks and semaphores (sync.c), the end of a
** task (task.c's join).  A task waits by parking on the timer alone
** (loop_park without a Watch) with its Task's node linked into the list;
** whoever wakes it unlinks the node and marks the task ready, so nothing
** polls or spins.  A timeout or a cancel takes the node off the list
** (loop_unpark), so a list only ever holds calls that still wait.
**
** Code outside tasks waits here too: its node lives on the C stack while
** task_turn runs the tasks, and a Watch without descriptor stands for it,
** so that waking it (loop_wake) ends the turn.  One outside wait exists at
** a time (the main thread is blocked in it); the Loop points at its node.
**
** A waiter may hold one value, its box, for the exchanges a queue makes
** with it: a task's box is its Op's anchor 1, kept in the Task while it
** waits; the outside waiter's a registry slot (the main thread's stack
** top belongs to the turn running the tasks).
*/
#include <stddef.h>

#include "loop_internal.h"
#include "base/errors.h"
#include "core/clock.h"
#include "core/loop.h"
#include "core/wait.h"

static const char outside_box_key = 0;   /* registry slot: the outside waiter's box */

/* The outside wait: its node, the Watch task_turn waits on, and how the
** waker ended it. */
typedef struct Outside {
  WaitNode node;
  Watch w;
  int outcome;
} Outside;

void waitlist_init(lua_State *L, WaitList *l) {
  l->head.next = l->head.prev = &l->head;
  l->loop = loop_get(L);
}

int waitlist_empty(const WaitList *l) {
  return l->head.next == &l->head;
}

static void node_append(WaitList *l, WaitNode *n) {
  n->prev = l->head.prev;
  n->next = &l->head;
  l->head.prev->next = n;
  l->head.prev = n;
}

void waitnode_unlink(WaitNode *n) {
  if (n->next == NULL) return;
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = NULL;
}

static Task *node_task(WaitNode *n) {
  return (Task *)(void *)((char *)n - offsetof(Task, node));
}

/* ---- boxes ------------------------------------------------------------ */

/* Push n's box. */
static void box_push(lua_State *L, WaitList *l, WaitNode *n) {
  if (n == l->loop->outwaiter) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &outside_box_key);
    return;
  }
  task_pushanchor(L, node_task(n), 1);
}

/* Pop the value on top of L into n's box. */
static void box_set(lua_State *L, WaitList *l, WaitNode *n) {
  if (n == l->loop->outwaiter) {
    lua_rawsetp(L, LUA_REGISTRYINDEX, &outside_box_key);
    return;
  }
  task_setanchor(L, node_task(n), 1);
}

/* ---- waking ------------------------------------------------------------ */

/* Unlink n and make its wait end with outcome. */
static void node_wake(WaitList *l, WaitNode *n, int outcome) {
  waitnode_unlink(n);
  if (n == l->loop->outwaiter) {
    Outside *o = (Outside *)(void *)n;
    o->outcome = outcome;
    loop_wake(&o->w);   /* ends the turn: it waits on that Watch */
  } else {
    loop_ready(node_task(n), outcome);
  }
}

int waitlist_wake(lua_State *L, WaitList *l, int outcome, int give) {
  if (waitlist_empty(l)) return 0;
  WaitNode *n = l->head.next;
  if (give) box_set(L, l, n);
  node_wake(l, n, outcome);
  return 1;
}

int waitlist_take(lua_State *L, WaitList *l) {
  if (waitlist_empty(l)) return 0;
  WaitNode *n = l->head.next;
  box_push(L, l, n);
  lua_pushnil(L);
  box_set(L, l, n);
  node_wake(l, n, 0);
  return 1;
}

void waitlist_wakeall(WaitList *l, int outcome) {
  while (!waitlist_empty(l)) node_wake(l, l->head.next, outcome);
}

void waitlist_drop(WaitList *l) {
  if (l->loop == NULL || l->loop->closed) return;   /* lua_close: no task is left */
  waitlist_wakeall(l, LSOCK_ECLOSED);
}

/* ---- waiting ------------------------------------------------------------ */

/* Run protected by wait_outside: slot 1 the Outside, 2 the deadline. */
static int outside_turn(lua_State *L) {
  Outside *o = (Outside *)lua_touserdata(L, 1);
  lua_pushinteger(L, task_turn(L, &o->w, 0, lua_tonumber(L, 2)));
  return 1;
}

/* Turn the loop until woken or deadline; the node is off the list
** whatever happens.  With no task left to wake it, the rest of the wait
** is a plain sleep. */
int waitlist_outside(lua_State *L, WaitList *l, double deadline, int box, int *raised) {
  Loop *loop = l->loop;
  if (loop->running)
    return luaL_error(L, "cannot wait here: a task that cannot yield would stop the loop");
  Outside o = { { NULL, NULL }, { .fd = -1, .nofd = 1 }, 0 };
  luaL_checkstack(L, 4, "no room to wait");
  if (box) {
    lua_pushvalue(L, box);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &outside_box_key);
  }
  node_append(l, &o.node);
  loop->outwaiter = &o.node;
  lua_pushcfunction(L, outside_turn);
  lua_pushlightuserdata(L, &o);
  lua_pushnumber(L, deadline);
  int status = lua_pcall(L, 2, 1, 0);
  int woken = o.node.next == NULL;
  waitnode_unlink(&o.node);
  loop->outwaiter = NULL;
  int res = woken ? o.outcome : LSOCK_ECANCELLED;
  if (status == LUA_OK) {
    if (!woken) res = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  if (box) {   /* off the list: no waker can touch it now */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &outside_box_key);
    lua_replace(L, box);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &outside_box_key);
  }
  *raised = status != LUA_OK;
  if (status == LUA_OK && !woken && res != LSOCK_ETIMEOUT) {   /* no task left: nobody can wake us */
    res = wait_fdready(L, -1, 0, deadline);   /* Ctrl-C raises: the box is let go already */
    if (res == 0) res = LSOCK_ETIMEOUT;
  }
  return res;
}

void waitlist_park(Task *t, WaitList *l, double deadline) {
  loop_park(t, 0, WAIT_READ, deadline);   /* cannot fail without a watch */
  if (t->state == T_PARKED) node_append(l, &t->node);   /* else cancelled: ends at once */
}

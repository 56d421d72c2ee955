/*
** sync.c - what tasks use to work together: socket.queue, socket.event,
** socket.lock and socket.semaphore.  Each keeps its waiting calls in wait
** lists (waitlist.c), so a waiter costs nothing until it is woken, waiters
** are served in the order they came, every wait takes a timeout, and
** code outside tasks (the REPL) waits the same way while the loop runs
** the tasks.
**
** Each wait goes through the retry driver (core/wait.h): its try step
** takes what is free ("taken? done : wait in the list", OP_WANTLIST).
** Whoever wakes a waiter hands it what it waited for before it runs: the
** item (queue:get, into the waiter's box), the room for its item
** (queue:put takes the value from the waiter's box), the lock or a unit of
** the semaphore.  So a newcomer can never take what a woken waiter was
** promised, and a waiter that times out or is cancelled got nothing.  A
** task whose wait ended that way and is cancelled before it runs keeps it
** (cancel then ends it at its next wait, and its <close> guard releases a
** lock); one whose coroutine is closed before it runs, and code outside
** tasks that Ctrl-C stops just then, give it back (the push steps with
** LSOCK_ECANCELLED): the item to the front of the queue (or the next
** getter), the unit to the next waiter, so FIFO order holds.  A put
** cannot take back a value that was taken: stopped then, it returns
** true, and outside tasks the Ctrl-C raises at the next wait.
*/
#include <string.h>

#include "base/errors.h"
#include "base/aux.h"
#include "core/loop.h"
#include "core/wait.h"
#include "socket.h"

#define QUEUE_META "luasock.queue"
#define EVENT_META "luasock.event"
#define LOCK_META  "luasock.lock"
#define SEMA_META  "luasock.semaphore"

/* The optional timeout argument at idx, for any wait here. */
static double sync_timeout(lua_State *L, int idx) {
  return aux_checktimeout(L, idx, 1, "timeout");
}

/* Run the wait in l of a call whose object is at slot 1 and, with box,
** whose box is at slot 2 (the driver's anchors 0 and 1). */
static int sync_wait(lua_State *L, OpTry try, OpPush push, WaitList *l, double timeout,
                     int box) {
  Op op;
  wait_oplist(&op, try, push, l, timeout);
  op.obj = lua_touserdata(L, 1);
  op.anchor[0] = 1;
  op.anchor[1] = (unsigned char)(box ? 2 : 0);
  return wait_op(L, &op);
}

/* Push the result of a wait that did not get what it waited for. */
static int sync_fail(lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushstring(L, err == LSOCK_ECLOSED ? "closed" : "timeout");
  return 2;
}

/* A new userdata of size bytes of class c, with nuv user values. */
static void *sync_new(lua_State *L, size_t size, const AuxClass *c, int nuv) {
  void *p = lua_newuserdatauv(L, size, nuv);
  memset(p, 0, size);
  aux_setclass(L, c);
  return p;
}

/* __gc: nobody can still wait (each waiter's stack holds the object)
** unless debug.setlocal removed it; such waiters are woken as closed
** rather than left linked to freed memory. */
static void sync_release(WaitList *l) {
  waitlist_drop(l);
}

/* ---- queue: a FIFO of values, bounded or not --------------------------- */

/* Items live in the user value table, a ring of cap slots (1-based). */
typedef struct Queue {
  WaitList getters, putters;   /* getters wait for an item, putters for room */
  lua_Integer maxsize;         /* 0: unbounded */
  lua_Integer head, count, cap;
  int closed;
} Queue;

static Queue *queue_check(lua_State *L, int idx) {
  return (Queue *)luaL_checkudata(L, idx, QUEUE_META);
}

/* Push the ring of the queue at qi, grown (unwrapped into a new table)
** when it is full. */
static void queue_ring(lua_State *L, Queue *q, int qi) {
  lua_getiuservalue(L, qi, 1);
  if (q->count < q->cap) return;
  lua_Integer cap = q->cap ? q->cap * 2 : 8;
  lua_createtable(L, (int)cap, 0);
  for (lua_Integer i = 0; i < q->count; i++) {
    lua_rawgeti(L, -2, (q->head + i) % q->cap + 1);
    lua_rawseti(L, -2, i + 1);
  }
  lua_remove(L, -2);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, qi, 1);
  q->head = 0, q->cap = cap;
}

/* Append the value on top to the items of the queue at qi (popped). */
static void queue_push(lua_State *L, Queue *q, int qi) {
  queue_ring(L, q, lua_absindex(L, qi));
  lua_rotate(L, -2, 1);   /* ring, value */
  lua_rawseti(L, -2, (q->head + q->count) % q->cap + 1);
  q->count++;
  lua_pop(L, 1);
}

/* Put the value on top back in front of the items (popped). */
static void queue_unshift(lua_State *L, Queue *q, int qi) {
  queue_ring(L, q, lua_absindex(L, qi));
  lua_rotate(L, -2, 1);
  q->head = (q->head + q->cap - 1) % q->cap;
  lua_rawseti(L, -2, q->head + 1);
  q->count++;
  lua_pop(L, 1);
}

/* Push the first item of the queue at slot 1 and remove it; a waiting
** putter's value takes the room freed. */
static void queue_pop(lua_State *L, Queue *q) {
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, q->head + 1);
  lua_pushnil(L);
  lua_rawseti(L, -3, q->head + 1);   /* let it be collected */
  lua_remove(L, -2);
  q->head = (q->head + 1) % q->cap;
  q->count--;
  if (waitlist_take(L, &q->putters)) queue_push(L, q, 1);
}

/* The only try of a get, before it waits: the first item, unless getters
** came first. */
static int get_try(lua_State *L, Op *op) {
  Queue *q = (Queue *)op->obj;
  if (q->count > 0 && waitlist_empty(&q->getters)) {
    queue_pop(L, q);
    return 0;
  }
  return q->closed ? LSOCK_ECLOSED : OP_WANTLIST;
}

/* A getter closed before it ran gives its item back: to the next getter,
** else in front of the items (getters wait only while there are none). */
static void get_giveback(lua_State *L, Op *op) {
  Queue *q = (Queue *)op->obj;
  wait_pushanchor(L, op, 0);
  wait_pushanchor(L, op, 1);
  if (lua_isnil(L, -1)) return;
  if (!waitlist_wake(L, &q->getters, 0, 1)) queue_unshift(L, q, -2);
}

static int get_push(lua_State *L, Op *op, int err, int nres) {
  if (err == LSOCK_ECANCELLED) {
    get_giveback(L, op);
    return 0;
  }
  if (err) return sync_fail(L, err);
  if (nres == 0) wait_pushanchor(L, op, 1);   /* the item a putter left in our box */
  return 1;
}

/* q:get([timeout]) -> the first item; nil, "timeout"; nil, "closed" once
** closed and empty. */
static int queue_get(lua_State *L) {
  Queue *q = queue_check(L, 1);
  double timeout = sync_timeout(L, 2);
  lua_settop(L, 1);
  lua_pushnil(L);   /* the box a putter fills */
  return sync_wait(L, get_try, get_push, &q->getters, timeout, 1);
}

/* The only try of a put, before it waits, with the value at slot 2: to
** a waiting getter, or into the queue if it has room and no putter came
** first. */
static int put_try(lua_State *L, Op *op) {
  Queue *q = (Queue *)op->obj;
  if (q->closed) return LSOCK_ECLOSED;
  lua_pushvalue(L, 2);
  if (waitlist_wake(L, &q->getters, 0, 1)) return 0;
  if (q->maxsize == 0 || (q->count < q->maxsize && waitlist_empty(&q->putters))) {
    queue_push(L, q, 1);
    return 0;
  }
  lua_pop(L, 1);
  return OP_WANTLIST;   /* a getter takes the value from our box */
}

/* Once woken, the value was taken: nothing can be given back, so the put
** is done, even when its wait was cut short (LSOCK_ECANCELLED): it
** returns true, as a call that completed does. */
static int put_push(lua_State *L, Op *op, int err, int nres) {
  (void)op, (void)nres;
  if (err && err != LSOCK_ECANCELLED) return sync_fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* q:put(value [, timeout]) -> true; nil, "timeout" when the queue stayed
** full; nil, "closed".  A waiting getter gets the value at once. */
static int queue_put(lua_State *L) {
  Queue *q = queue_check(L, 1);
  luaL_argcheck(L, !lua_isnoneornil(L, 2), 2, "value expected (a queue holds no nil)");
  double timeout = sync_timeout(L, 3);
  lua_settop(L, 2);   /* the box: our value */
  return sync_wait(L, put_try, put_push, &q->putters, timeout, 1);
}

/* q:len() -> the number of items in the queue. */
static int queue_len(lua_State *L) {
  lua_pushinteger(L, queue_check(L, 1)->count);
  return 1;
}

/* q:close() -> true.  Waiting getters and putters get nil, "closed";
** later puts too, later gets once the items left are taken. */
static int queue_close(lua_State *L) {
  Queue *q = queue_check(L, 1);
  q->closed = 1;
  waitlist_wakeall(&q->getters, LSOCK_ECLOSED);
  waitlist_wakeall(&q->putters, LSOCK_ECLOSED);
  lua_pushboolean(L, 1);
  return 1;
}

static int queue_gc(lua_State *L) {
  Queue *q = queue_check(L, 1);
  sync_release(&q->getters);
  sync_release(&q->putters);
  return 0;
}

static int queue_tostring(lua_State *L) {
  Queue *q = queue_check(L, 1);
  lua_pushfstring(L, "queue (%I items%s)", (LUAI_UACINT)q->count, q->closed ? ", closed" : "");
  return 1;
}

static const luaL_Reg queue_methods[] = {
  {"get", queue_get}, {"put", queue_put}, {"len", queue_len}, {"close", queue_close},
  {NULL, NULL}
};
static const luaL_Reg queue_meta[] = {
  {"__gc", queue_gc}, {"__tostring", queue_tostring}, {"__len", queue_len},
  {"__index", NULL}, {NULL, NULL}
};
static const AuxClass queue_class = {QUEUE_META, queue_meta, queue_methods, 0};

/* socket.queue([maxsize]) -> a queue; maxsize 0 or none: unbounded. */
static int lsock_queue(lua_State *L) {
  lua_Integer maxsize = aux_optint(L, 1, 0, 0, LUA_MAXINTEGER);
  Queue *q = (Queue *)sync_new(L, sizeof *q, &queue_class, 1);
  q->maxsize = maxsize;
  waitlist_init(L, &q->getters);
  waitlist_init(L, &q->putters);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* ---- event: a flag tasks wait for ------------------------------------- */

typedef struct Event {
  WaitList waiters;
  int set;
} Event;

static Event *event_check(lua_State *L, int idx) {
  return (Event *)luaL_checkudata(L, idx, EVENT_META);
}

/* ev:set() -> true; wakes every waiter. */
static int event_set(lua_State *L) {
  Event *e = event_check(L, 1);
  e->set = 1;
  waitlist_wakeall(&e->waiters, 0);
  lua_pushboolean(L, 1);
  return 1;
}

static int event_clear(lua_State *L) {
  event_check(L, 1)->set = 0;
  lua_pushboolean(L, 1);
  return 1;
}

static int event_isset(lua_State *L) {
  lua_pushboolean(L, event_check(L, 1)->set);
  return 1;
}

/* The only try of a wait, before it waits. */
static int event_try(lua_State *L, Op *op) {
  (void)L;
  return ((Event *)op->obj)->set ? 0 : OP_WANTLIST;
}

static int event_push(lua_State *L, Op *op, int err, int nres) {
  (void)op, (void)nres;
  if (err == LSOCK_ECANCELLED) return 0;   /* nothing was handed */
  if (err) return sync_fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ev:wait([timeout]) -> true once set; nil, "timeout". */
static int event_wait(lua_State *L) {
  Event *e = event_check(L, 1);
  double timeout = sync_timeout(L, 2);
  lua_settop(L, 1);
  return sync_wait(L, event_try, event_push, &e->waiters, timeout, 0);
}

static int event_gc(lua_State *L) {
  sync_release(&event_check(L, 1)->waiters);
  return 0;
}

static int event_tostring(lua_State *L) {
  lua_pushstring(L, event_check(L, 1)->set ? "event (set)" : "event (clear)");
  return 1;
}

static const luaL_Reg event_methods[] = {
  {"set", event_set}, {"clear", event_clear}, {"is_set", event_isset}, {"wait", event_wait},
  {NULL, NULL}
};
static const luaL_Reg event_meta[] = {
  {"__gc", event_gc}, {"__tostring", event_tostring}, {"__index", NULL}, {NULL, NULL}
};
static const AuxClass event_class = {EVENT_META, event_meta, event_methods, 0};

/* socket.event() -> an event, clear. */
static int lsock_event(lua_State *L) {
  Event *e = (Event *)sync_new(L, sizeof *e, &event_class, 0);
  waitlist_init(L, &e->waiters);
  return 1;
}

/* ---- lock and semaphore: units handed out in order ---------------------- */

/* A lock is a semaphore of one unit whose release checks it was held. */
typedef struct Sema {
  WaitList waiters;
  lua_Integer count;   /* units free */
  int islock;
} Sema;

static Sema *sema_check(lua_State *L, int idx) {
  void *p = luaL_testudata(L, idx, LOCK_META);
  if (p == NULL) p = luaL_checkudata(L, idx, SEMA_META);
  return (Sema *)p;
}

/* Hand a unit to the first waiter, or make it free again. */
static int sema_handon(lua_State *L, Sema *s) {
  if (waitlist_wake(L, &s->waiters, 0, 0)) return 1;
  if (s->count == LUA_MAXINTEGER) return 0;
  s->count++;
  return 1;
}

/* The only try of an acquire, before it waits: a free unit, unless
** waiters came first. */
static int acquire_try(lua_State *L, Op *op) {
  Sema *s = (Sema *)op->obj;
  (void)L;
  if (s->count == 0 || !waitlist_empty(&s->waiters)) return OP_WANTLIST;
  s->count--;
  return 0;
}

/* Acquired: the lock itself (anchor 0) is the guard. */
static int acquire_push(lua_State *L, Op *op, int err, int nres) {
  (void)nres;
  if (err == LSOCK_ECANCELLED) {   /* closed before it ran: the unit goes on */
    sema_handon(L, (Sema *)op->obj);
    return 0;
  }
  if (err) return sync_fail(L, err);
  wait_pushanchor(L, op, 0);
  return 1;
}

/* l:acquire([timeout]) -> l itself, to close (local held <close> =
** assert(l:acquire())), or nil, "timeout". */
static int sema_acquire(lua_State *L) {
  Sema *s = sema_check(L, 1);
  double timeout = sync_timeout(L, 2);
  lua_settop(L, 1);
  return sync_wait(L, acquire_try, acquire_push, &s->waiters, timeout, 0);
}

/* l:release() -> true: the first waiter gets the unit, or it is free
** again.  Releasing a lock nobody holds raises. */
static int sema_release(lua_State *L) {
  Sema *s = sema_check(L, 1);
  if (s->islock && s->count > 0) return luaL_error(L, "release of a lock that is not held");
  if (!sema_handon(L, s)) return luaL_error(L, "semaphore count overflow");
  lua_pushboolean(L, 1);
  return 1;
}

/* __close of the guard acquire returned. */
static int sema_close(lua_State *L) {
  lua_settop(L, 1);
  return sema_release(L);
}

static int sema_locked(lua_State *L) {
  lua_pushboolean(L, sema_check(L, 1)->count == 0);
  return 1;
}

static int sema_value(lua_State *L) {
  lua_pushinteger(L, sema_check(L, 1)->count);
  return 1;
}

static int sema_gc(lua_State *L) {
  sync_release(&sema_check(L, 1)->waiters);
  return 0;
}

static int sema_tostring(lua_State *L) {
  Sema *s = sema_check(L, 1);
  if (s->islock) lua_pushstring(L, s->count ? "lock (free)" : "lock (held)");
  else lua_pushfstring(L, "semaphore (%I free)", (LUAI_UACINT)s->count);
  return 1;
}

static const luaL_Reg lock_methods[] = {
  {"acquire", sema_acquire}, {"release", sema_release}, {"locked", sema_locked},
  {NULL, NULL}
};
static const luaL_Reg sema_methods[] = {
  {"acquire", sema_acquire}, {"release", sema_release}, {"value", sema_value},
  {NULL, NULL}
};
static const luaL_Reg sema_meta[] = {
  {"__gc", sema_gc}, {"__close", sema_close}, {"__tostring", sema_tostring},
  {"__index", NULL}, {NULL, NULL}
};
static const AuxClass lock_class = {LOCK_META, sema_meta, lock_methods, 0};
static const AuxClass sema_class = {SEMA_META, sema_meta, sema_methods, 0};

static Sema *sema_new(lua_State *L, lua_Integer n, const AuxClass *c) {
  Sema *s = (Sema *)sync_new(L, sizeof *s, c, 0);
  s->count = n;
  waitlist_init(L, &s->waiters);
  return s;
}

/* socket.lock() -> a lock, free. */
static int lsock_lock(lua_State *L) {
  sema_new(L, 1, &lock_class)->islock = 1;
  return 1;
}

/* socket.semaphore([n]) -> a semaphore with n units (default 1). */
static int lsock_semaphore(lua_State *L) {
  sema_new(L, aux_optint(L, 1, 1, 0, LUA_MAXINTEGER), &sema_class);
  return 1;
}

/* ---- the module -------------------------------------------------------- */

const luaL_Reg sync_funcs[] = {
  {"queue", lsock_queue},
  {"event", lsock_event},
  {"lock", lsock_lock},
  {"semaphore", lsock_semaphore},
  {NULL, NULL}
};

/*
** loop.c - the scheduler core: the poller, the run queue, the timer heap,
** parking and waking tasks, handing work to helper threads, and the Loop
** object.  It only marks tasks ready: task.c makes, resumes and ends them
** and drives the loop (socket.run, outside waits that turn it); the
** records both share are in loop_internal.h.  Blocking work without a
** descriptor goes to pool.c.
**
** A task is a coroutine plus a Task record, both made once by spawn: no
** allocation happens per wait.  A waiting task is parked on one Watch
** direction and/or the timer heap; event dispatch only marks tasks ready
** (no Lua code runs while an epoll batch is processed, so no Watch can be
** freed under us), then the ready tasks are resumed in order.
**
** Each descriptor is registered once, edge-triggered for both directions,
** and never re-armed: callers always try their syscall before parking
** (or know from the readiness hint that it would fail, a hint that any
** event for the descriptor ends), so an edge that comes while nobody
** waits can be dropped.
**
** Left out: a task waits on one thing at a time (select builds its own
** epoll fd and waits on that).
*/
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop_internal.h"
#include "base/errors.h"
#include "core/clock.h"
#include "core/interrupt.h"
#include "core/pool.h"
#include "core/loop.h"
#include "core/wait.h"

#define LOOP_META  "luasock.loop"

static const char loop_key = 0;   /* registry key of the Loop userdata */

/* ---- the poller: the only part that knows about epoll --------------- */

/* What an event says: ready to read, to write; urgent data or a hang-up
** (READY_NOHINT: from now on a short read proves nothing). */
enum { READY_R = 1 << WAIT_READ, READY_W = 1 << WAIT_WRITE, READY_NOHINT = 4 };

static int poller_init(Poller *p) {
  p->fd = epoll_create1(EPOLL_CLOEXEC);
  return p->fd < 0 ? errno : 0;
}

/* Register w for good: both directions, edge-triggered, so that it never
** needs re-arming; EPOLLRDHUP wakes a reader when the peer shuts down,
** EPOLLPRI when TCP urgent data comes (both end the readiness hint). */
static int poller_add(Poller *p, Watch *w) {
  struct epoll_event ev;
  ev.events = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = w;
  return epoll_ctl(p->fd, EPOLL_CTL_ADD, w->fd, &ev) < 0 ? errno : 0;
}

static void poller_del(Poller *p, Watch *w) {
  struct epoll_event ev = {0};  /* kernels before 2.6.9 wanted one */
  epoll_ctl(p->fd, EPOLL_CTL_DEL, w->fd, &ev);
}

/* Wait up to ms (-1: forever); returns the number of events or -1. */
static int poller_wait(Poller *p, int ms) {
  return epoll_wait(p->fd, p->ev, POLL_BATCH, ms);
}

/* Event i: its Watch and what it is ready for.  Errors and hang-ups wake
** both sides, so that the next syscall reports them. */
static int poller_get(Poller *p, int i, Watch **w) {
  uint32_t e = p->ev[i].events;
  int r = 0;
  *w = (Watch *)p->ev[i].data.ptr;
  if (e & (EPOLLERR | EPOLLHUP)) return READY_R | READY_W | READY_NOHINT;
  if (e & (EPOLLIN | EPOLLPRI | EPOLLRDHUP)) r |= READY_R;
  if (e & (EPOLLPRI | EPOLLRDHUP)) r |= READY_NOHINT;
  if (e & EPOLLOUT) r |= READY_W;
  return r;
}

static void poller_close(Poller *p) {
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
}

/* ---- starting: the poller and the pool, at the first wait ---------- */

/* Make the poller and the pool, with the pool's eventfd registered (it
** also ends an epoll_wait on Ctrl-C: loop_wakeup), unless they exist.
** 0 or an errno, with nothing left half made. */
int loop_start(Loop *loop) {
  if (loop->poller.fd >= 0) return 0;
  int err = poller_init(&loop->poller);
  if (err) return err;
  Pool *pool = pool_new();
  if (pool == NULL) err = errno;
  else {
    loop->poolw.fd = pool_fd(pool);
    err = poller_add(&loop->poller, &loop->poolw);
  }
  if (err) {
    pool_free(pool, NULL, NULL);
    loop->poolw.fd = -1;
    poller_close(&loop->poller);
    return err;
  }
  loop->pool = pool;
  loop->poolw.loop = loop;
  loop->wakefd = loop->poolw.fd;
  return 0;
}

/* ---- run queue: a ring that never grows while the loop runs --------- */

/* Make room for one more task in the run queue and in the heap; called by
** spawn, so that pushing and inserting later can never fail.  Both are
** sized for every task but used only as far as tasks are ready or have a
** deadline: they grow by a copy of that used part (realloc would copy, and
** so touch, all of the old block), so that the pages past it stay
** untouched, which a server of idle connections does not pay for. */
void loop_reserve(lua_State *L, Loop *loop) {
  unsigned need = (unsigned)(loop->ntasks + loop->nheld) + 1;
  if (need > loop->qcap) {
    unsigned cap = loop->qcap ? loop->qcap * 2 : 64;
    Task **q = (Task **)malloc(cap * sizeof *q);
    if (q == NULL) luaL_error(L, "not enough memory");
    for (unsigned i = 0; i < loop->qcount; i++)  /* unwrap the ring */
      q[i] = loop->runq[(loop->qhead + i) & (loop->qcap - 1)];
    free(loop->runq);
    loop->runq = q, loop->qhead = 0, loop->qcap = cap;
  }
  if ((int)need > loop->heapcap) {
    int cap = loop->heapcap ? loop->heapcap * 2 : 64;
    Timer *h = (Timer *)malloc((size_t)cap * sizeof *h);
    if (h == NULL) luaL_error(L, "not enough memory");
    if (loop->nheap > 0) memcpy(h, loop->heap, (size_t)loop->nheap * sizeof *h);
    free(loop->heap);
    loop->heap = h, loop->heapcap = cap;
  }
}

void loop_runqpush(Loop *loop, Task *t) {
  if (t->inq) return;   /* a user resumed a queued task himself: once is enough */
  t->inq = 1;
  loop->runq[(loop->qhead + loop->qcount++) & (loop->qcap - 1)] = t;
}

Task *loop_runqpop(Loop *loop) {
  Task *t = loop->runq[loop->qhead];
  loop->qhead = (loop->qhead + 1) & (loop->qcap - 1);
  loop->qcount--;
  t->inq = 0;
  return t;
}

/* ---- timer heap: binary min-heap on deadline, tasks know their index - */

static void heap_set(Loop *loop, int i, Timer e) {
  loop->heap[i] = e;
  e.t->heapidx = i;
}

static void heap_up(Loop *loop, int i) {
  Timer e = loop->heap[i];
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (loop->heap[parent].deadline <= e.deadline) break;
    heap_set(loop, i, loop->heap[parent]);
    i = parent;
  }
  heap_set(loop, i, e);
}

static void heap_down(Loop *loop, int i) {
  Timer e = loop->heap[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= loop->nheap) break;
    if (c + 1 < loop->nheap && loop->heap[c + 1].deadline < loop->heap[c].deadline) c++;
    if (e.deadline <= loop->heap[c].deadline) break;
    heap_set(loop, i, loop->heap[c]);
    i = c;
  }
  heap_set(loop, i, e);
}

/* t waits until deadline (>= 0). */
static void heap_insert(Loop *loop, Task *t, double deadline) {
  loop->heap[loop->nheap] = (Timer){ deadline, t };
  heap_up(loop, loop->nheap++);
}

static void heap_remove(Loop *loop, Task *t) {
  int i = t->heapidx;
  Timer last = loop->heap[--loop->nheap];
  t->heapidx = -1;
  if (last.t == t) return;
  heap_set(loop, i, last);
  heap_up(loop, i);
  heap_down(loop, last.t->heapidx);
}

/* ---- parking and waking --------------------------------------------- */

/* Take t off its watch, out of the heap and off its wait list, wherever
** it is parked. */
static void task_detach(Task *t) {
  if (t->onwatch) {
    Watch *w = t->op.w;
    if (w->waiter[t->dir] == t) w->waiter[t->dir] = NULL;
    t->onwatch = 0;
  }
  if (t->heapidx >= 0) heap_remove(t->loop, t);
  waitnode_unlink(&t->node);
}

void loop_unpark(Task *t) {
  if (t->state != T_RUNNING) task_detach(t);   /* a running task is parked on nothing */
}

/* The wait of t ended with outcome: queue it to be resumed. */
void loop_ready(Task *t, int outcome) {
  task_detach(t);
  t->outcome = outcome;
  t->state = T_READY;
  loop_runqpush(t->loop, t);
}

/* w is ready in direction dir: wake its waiter if it still waits for it. */
static void watch_wake(Watch *w, int dir) {
  Task *t = w->waiter[dir];
  if (t != NULL && t->state == T_PARKED && t->onwatch && t->op.w == w && t->dir == dir)
    loop_ready(t, 0);
}

void loop_wake(Watch *w) {
  w->woken = 1;   /* an outside wait turning the loop on w returns 0 */
  w->hint &= (unsigned char)~HINT_DRAINED;   /* its reader tries again */
  if (w->loop == NULL || w->loop->closed) return;   /* no task parked on it */
  watch_wake(w, WAIT_READ);
  watch_wake(w, WAIT_WRITE);
}

/* A thread's extra space points to its Task, to the Loop's `outside`
** record (no coroutine) when it runs no task, or is NULL before any Loop
** existed. */
Task *loop_current(lua_State *L) {
  Task *t = *(Task **)lua_getextraspace(L);
  return t != NULL && t->co != NULL ? t : NULL;
}

void loop_setcurrent(lua_State *co, Task *t) {
  *(Task **)lua_getextraspace(co) = t;
}

int loop_park(Task *t, int onwatch, int dir, double deadline) {
  Loop *loop = t->loop;
  if (onwatch) {
    Watch *w = t->op.w;
    if (w->loop == NULL || w->gen != loop->gen) {
      int err = loop_start(loop);
      if (!err) err = poller_add(&loop->poller, w);
      if (err) return err;
      w->loop = loop;
      w->gen = loop->gen;
    }
    if (w->waiter[dir] != NULL && w->waiter[dir] != t)
      luaL_error(t->co, "another task is already waiting to %s on this socket",
                 dir == WAIT_READ ? "read" : "write");
    w->waiter[dir] = t;
    t->onwatch = 1;
    t->dir = (unsigned char)dir;
  }
  if (deadline >= 0) heap_insert(loop, t, deadline);
  t->outcome = 0;
  t->state = T_PARKED;
  if (t->cancelled) loop_ready(t, LSOCK_ECANCELLED);   /* its next wait ends it */
  return 0;
}

/* write(2) is async-signal-safe; the loop reads the counter back (pool's
** eventfd: pool_collect then finds no job) and checks the interrupt. */
void loop_wakeup(Loop *loop) {
  uint64_t one = 1;
  int fd = loop->wakefd;
  if (fd >= 0 && write(fd, &one, sizeof one) < 0) { /* full: already awake */ }
}

int loop_outcome(Task *t) {
  return t != NULL ? t->outcome : 0;
}

int loop_parked(Task *t) {
  return t != NULL && (t->state == T_PARKED || t->state == T_THREAD);
}

/* ---- closing a descriptor ------------------------------------------- */

void loop_listen(lua_State *L, Listener *l) {
  Listener *head = &loop_get(L)->listeners;
  l->prev = head;
  l->next = head->next;
  head->next->prev = l;
  head->next = l;
}

void loop_unlisten(Listener *l) {
  if (l->next == NULL) return;
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->prev = l->next = NULL;
}

/* w need not be registered with the poller (w->loop NULL): a listener
** may have listed it all the same, so the loop is L's.  A listener only
** wakes its own task, it never closes anything: the ring cannot change
** under the walk. */
void loop_unwatch(lua_State *L, Watch *w) {
  Loop *loop = loop_of(L);
  if (loop == NULL || loop->closed) {   /* lua_close: the tasks are gone, touch nothing */
    w->loop = NULL;
    w->waiter[0] = w->waiter[1] = NULL;
    return;
  }
  for (Listener *l = loop->listeners.next; l != &loop->listeners; l = l->next)
    l->closing(l, w);
  if (w->loop == NULL) return;
  w->loop = NULL;
  if (w->gen == loop->gen) poller_del(&loop->poller, w);   /* else only a parent's poller has it */
  for (int dir = 0; dir < 2; dir++) {
    Task *t = w->waiter[dir];
    if (t != NULL) loop_ready(t, LSOCK_ECLOSED);   /* else it would wait for ever */
  }
}

void loop_closewatch(lua_State *L, Watch *w) {
  if (w->fd < 0) return;
  loop_unwatch(L, w);
  close(w->fd);   /* on Linux the fd is released even on EINTR */
  w->fd = -1;
}

/* Deadlines that passed: a task parked on a watch, in a wait list or on a
** helper thread's job (a deadline scope's) times out; one parked on the
** timer only (sleep) has simply waited long enough. */
void loop_expire(Loop *loop) {
  if (loop->nheap == 0) return;
  double now = clock_now();
  while (loop->nheap > 0 && loop->heap[0].deadline <= now) {
    Task *t = loop->heap[0].t;
    loop_ready(t, t->onwatch || t->node.next != NULL || t->state == T_THREAD ? LSOCK_ETIMEOUT : 0);
  }
}

/* ---- helper threads ------------------------------------------------- */

/* A job ended (L: the thread collecting).  Whoever still waits for its
** request is woken: the task parked on it, or the code outside tasks; one
** that gave up (a deadline, a cancel, Ctrl-C) waits for something else or
** has ended, and the result is dropped with the request when it is
** collected.  The job's hold on the request and the task goes. */
static void job_ended(PoolJob *job, void *ud) {
  lua_State *L = (lua_State *)ud;
  Task *t = job->t;
  Loop *loop = t->loop;
  ((JobHead *)job->arg)->busy = 0;
  if (t == &loop->outside) {
    if (loop->outjob == job->arg) {
      loop->outjob = NULL;
      loop_wake(&loop->outjobw);
    }
  } else if (t->state == T_THREAD && t->op.obj == job->arg) {
    loop_ready(t, 0);
  }
  luaL_unref(L, LUA_REGISTRYINDEX, job->keep[0]);
  luaL_unref(L, LUA_REGISTRYINDEX, job->keep[1]);
}

/* lua_close: the threads are joined; free what the jobs not collected
** left in their requests (whose finalizers left it, busy). */
static void job_closed(PoolJob *job, void *ud) {
  JobHead *head = (JobHead *)job->arg;
  (void)ud;
  head->busy = 0;
  if (head->drop != NULL) head->drop(job->arg);
}

void loop_collectjobs(lua_State *L, Loop *loop) {
  pool_collect(loop->pool, job_ended, L);
}

/* Hand work(request at L's index req) to a helper thread for t (the
** Loop's outside record: code outside tasks).  The job holds the request
** and t until it ended: a request is never at the address of another while
** its job runs, so job_ended knows whether t still waits for it.  0 or an
** errno. */
static int job_start(lua_State *L, Loop *loop, Task *t, void (*work)(void *), int req) {
  int err = loop_start(loop);
  if (err) return err;
  PoolJob job = { work, lua_touserdata(L, req), t, { LUA_NOREF, LUA_NOREF } };
  luaL_checkstack(L, 2, "no room to wait");
  lua_pushvalue(L, req);
  job.keep[1] = luaL_ref(L, LUA_REGISTRYINDEX);
  if (t != &loop->outside) {
    task_pushlive(L, loop);
    lua_rawgeti(L, -1, t->ref);
    lua_remove(L, -2);
    job.keep[0] = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  err = pool_submit(loop->pool, &job);
  if (err) {
    luaL_unref(L, LUA_REGISTRYINDEX, job.keep[0]);
    luaL_unref(L, LUA_REGISTRYINDEX, job.keep[1]);
    return err;
  }
  ((JobHead *)job.arg)->busy = 1;
  return 0;
}

int loop_parkthread(lua_State *L, Task *t, void (*work)(void *), int req, double deadline) {
  if (t->cancelled) {   /* its next wait ends it: no job */
    t->state = T_PARKED;
    loop_ready(t, LSOCK_ECANCELLED);
    return 0;
  }
  int err = job_start(L, t->loop, t, work, req);
  if (err) return err;   /* inline, then */
  task_detach(t);
  t->outcome = 0;
  t->state = T_THREAD;
  if (deadline >= 0) heap_insert(t->loop, t, deadline);
  return 0;
}

/* Start the outside job, which the Loop then names as awaited; EAGAIN
** when it must run inline. */
int loop_startoutside(lua_State *L, Loop *loop, void (*work)(void *), int req) {
  if (loop->closed || loop->running) return EAGAIN;   /* run or a turn: it cannot turn */
  if (job_start(L, loop, &loop->outside, work, req) != 0) return EAGAIN;
  loop->outjob = lua_touserdata(L, req);
  return 0;
}

/* ---- event dispatch: epoll events mark their tasks ready ------------- */

/* Wait up to ms for events and mark their tasks ready. */
void loop_pollevents(lua_State *L, Loop *loop, int ms) {
  int n;
  if (loop->poller.fd < 0 && (ms == 0 || loop_start(loop) != 0)) {
    /* No descriptor is registered and no job is out: only a timer can end
    ** the wait (out of descriptors, it sleeps; later waits start the loop). */
    n = ms == 0 ? 0 : poll(NULL, 0, ms);
    if (n < 0 && errno == EINTR) interrupt_check(L);
    return;
  }
  n = poller_wait(&loop->poller, ms);
  if (n < 0) {
    if (errno != EINTR) luaL_error(L, "epoll_wait: %s", strerror(errno));
    interrupt_check(L);   /* Ctrl-C raises; another signal: no events */
    return;
  }
  for (int i = 0; i < n; i++) {
    Watch *w;
    int ready = poller_get(&loop->poller, i, &w);
    if (w == &loop->poolw) { loop_collectjobs(L, loop); continue; }
    if (ready & READY_NOHINT) w->hint = 0;
    else if (ready & READY_R) w->hint &= (unsigned char)~HINT_DRAINED;
    if (ready & READY_R) watch_wake(w, WAIT_READ);
    if (ready & READY_W) watch_wake(w, WAIT_WRITE);
  }
}

/* ---- the Loop object ------------------------------------------------- */

Loop *loop_peek(lua_State *L) {
  Task *t = *(Task **)lua_getextraspace(L);
  return t != NULL ? t->loop : NULL;
}

/* A thread made before the Loop (the stock lua5.4 loading the module
** after it made coroutines) has NULL there, if its allocator zeroed the
** state: it learns the Loop from the registry once. */
Loop *loop_of(lua_State *L) {
  Loop *loop = loop_peek(L);
  if (loop != NULL) return loop;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &loop_key);
  loop = (Loop *)luaL_testudata(L, -1, LOOP_META);
  lua_pop(L, 1);
  if (loop != NULL) loop_setcurrent(L, &loop->outside);
  return loop;
}

Loop *loop_get(lua_State *L) {
  Loop *loop = loop_of(L);
  if (loop == NULL || loop->closed) luaL_error(L, "the socket loop is closed");
  return loop;
}

/* The Loop of L when an outside wait should turn it: tasks exist and
** neither run nor another turn is active; else NULL. */
Loop *loop_idle(lua_State *L) {
  Loop *loop = loop_of(L);
  if (loop == NULL || loop->closed || loop->running || loop->ntasks == 0) return NULL;
  return loop;
}

/* Release everything the loop holds: join the workers, close the poller
** and the eventfd, free the arrays.  Idempotent. */
static void loop_close(Loop *loop) {
  if (loop->closed) return;
  loop->closed = 1;
  loop->wakefd = -1;   /* before the pool closes it: a late Ctrl-C writes nowhere */
  pool_free(loop->pool, job_closed, NULL);   /* joins the workers */
  loop->pool = NULL;
  poller_close(&loop->poller);
  free(loop->runq);
  free(loop->heap);
  loop->runq = NULL, loop->heap = NULL;
}

/* __gc of the Loop (lua_close).  The Loop's memory itself stays valid
** until every finalizer has run, and loop_unwatch checks `closed`, so
** sockets finalised after us are safe. */
static int loop_gc(lua_State *L) {
  loop_close((Loop *)luaL_checkudata(L, 1, LOOP_META));   /* reachable through the registry */
  return 0;
}

/* The record alone: no descriptor and no thread yet (loop_start). */
static void loop_init(Loop *loop) {
  memset(loop, 0, sizeof *loop);
  loop->poller.fd = loop->poolw.fd = loop->wakefd = -1;   /* nothing to close yet */
  loop->outjobw.fd = -1;
  loop->outjobw.nofd = 1;   /* stands for the outside job's end */
  loop->listeners.prev = loop->listeners.next = &loop->listeners;
  loop->outside.loop = loop;
  loop->outside.state = T_DONE;
  loop->outside.heapidx = -1;
}

/* Create the one Loop of this state (again: keep the first) as a userdata
** in the registry, and make "no task, this loop" the extra space every
** new thread copies from the main thread. */
void loop_open(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &loop_key) != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  Loop *loop = (Loop *)lua_newuserdatauv(L, sizeof *loop, 0);
  loop_init(loop);
  if (luaL_newmetatable(L, LOOP_META)) {
    lua_pushcfunction(L, loop_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);   /* first: an allocation failing later leaks nothing */
  task_open(L, loop);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &loop_key);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  loop_setcurrent(lua_tothread(L, -1), &loop->outside);   /* new threads copy it */
  lua_pop(L, 1);
}

/* ---- after fork(2): a loop of the child's own ------------------------ */

void loop_prefork(lua_State *L) {
  Loop *loop = loop_of(L);
  if (loop != NULL && loop->pool != NULL) pool_quiesce(loop->pool);
}

void loop_postfork(lua_State *L) {
  Loop *loop = loop_of(L);
  if (loop != NULL && loop->pool != NULL) pool_resume(loop->pool);
}

/* Register again the watches that parked tasks wait on (the poller is
** new: it has none).  The tasks are found in the table of live tasks,
** which anchors each one.  No task is cancelled: the helper threads' jobs
** followed the fork (loop_prefork).  Returns 0 or an errno. */
static int retake_tasks(lua_State *L, Loop *loop) {
  int err = 0;
  task_pushlive(L, loop);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    Task *t = (Task *)luaL_testudata(L, -1, TASK_META);
    lua_pop(L, 1);
    if (t == NULL) continue;
    Watch *w = t->onwatch ? t->op.w : NULL;
    if (t->state == T_PARKED && w != NULL && w->gen != loop->gen && !err) {
      err = poller_add(&loop->poller, w);
      if (!err) w->gen = loop->gen;
    }
  }
  lua_pop(L, 1);
  return err;
}

/* The poller and the pool's eventfd are the parent's too: close our
** copies (its epoll set must not change under it) and make our own; the
** pool, quiesced before the fork (loop_prefork), goes on with its jobs.
** Every watch registered before is now of an older gen, so it is
** registered again at its next wait, which tries its syscall first: no
** readiness is lost. */
int loop_forked(lua_State *L) {
  Loop *loop = loop_get(L);
  if (loop->poller.fd < 0) return 0;   /* never started: the child starts its own */
  poller_close(&loop->poller);
  loop->wakefd = -1;
  loop->gen++;   /* a chain of 256 forks would reuse one: workers never fork */
  int err = poller_init(&loop->poller);
  if (!err) err = pool_forked(loop->pool);
  if (err) return err;
  loop->poolw.fd = pool_fd(loop->pool);
  err = poller_add(&loop->poller, &loop->poolw);
  if (err) return err;
  loop->wakefd = loop->poolw.fd;
  luaL_checkstack(L, 4, "no room to fork");
  return retake_tasks(L, loop);
}

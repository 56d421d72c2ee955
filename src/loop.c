/*
** loop.c - the scheduler: tasks, the run queue, the timer heap and the
** poller.  Blocking work without a descriptor goes to pool.c.
**
** A task is a coroutine plus a Task record, both made once by spawn: no
** allocation happens per wait.  A waiting task is parked on one Watch
** direction and/or the timer heap; event dispatch only marks tasks ready
** (no Lua code runs while an epoll batch is processed, so no Watch can be
** freed under us), then the ready tasks are resumed in order.
**
** Each descriptor is registered once, edge-triggered for both directions,
** and never re-armed: callers always try their syscall before parking, so
** an edge that comes while nobody waits can be dropped.
**
** While code outside any task waits (a blocking call on the main thread,
** the REPL waiting for a key), the loop keeps turning: loop_turn resumes
** the tasks and polls the loop's epoll fd beside the descriptor waited
** for, so that outside code never stops the tasks.  With no task it
** costs one registry lookup, and waits inside tasks do not go through it.
** A poll(2) over both fds, rather than adding the outside fd to the epoll
** set, leaves the set's edge-triggered registrations alone.  The turn
** reads the outside Watch's fd again before each poll: a task may have
** closed it (the wait returns "closed") and its number may name another
** socket by then; loop_wake on that Watch ends the wait too.  Ctrl-C
** meanwhile stops the outside code; a task spinning in Lua code at that
** moment is stopped too (it fails with "interrupted!", as under run):
** yielding it instead would leave it to spin again at the next turn.
**
** Left out: a task waits on one thing at a time (select builds its own
** epoll fd and waits on that), and blocking calls made in a coroutine the
** user resumes himself inside a task block the whole loop, as they would
** outside a task.  Name resolution outside a task runs inline, so the
** tasks wait for it.
*/
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "lsock.h"

#define LOOP_META  "luasock.loop"
#define TASK_META  "luasock.task"
#define POLL_BATCH 256   /* events taken per epoll_wait */

static const char loop_key = 0;   /* registry key of the Loop userdata */
static const char error_key = 0;  /* registry key of the first error not yet returned by run */

/* For Ctrl-C (one loop runs at a time in a process that takes signals):
** the task coroutine being resumed, and an eventfd the loop polls. */
static lua_State *volatile running_co = NULL;
static volatile int wake_fd = -1;

/* The Watch an outside wait turning the loop waits on (NULL: none, or a
** pure delay), and whether a task called loop_wake on it meanwhile. */
static Watch *turn_watch = NULL;
static int turn_woken = 0;

/* What a task is doing; READY tasks are in the run queue exactly once. */
enum { T_READY, T_RUNNING, T_PARKED, T_THREAD, T_DONE };

struct Task {
  lua_State *co;            /* the coroutine (our user value 1) */
  Loop *loop;
  Watch *w;                 /* watch it is parked on, or NULL */
  double deadline;          /* absolute; < 0 none */
  int heapidx;              /* index in the timer heap, -1 if not there */
  int ref;                  /* registry reference keeping us alive */
  int outcome;              /* 0, LSOCK_ETIMEOUT or LSOCK_ECLOSED */
  int nargs;                /* arguments for the first resume */
  unsigned char dir, state;
  unsigned char inq;        /* in the run queue (at most once) */
  unsigned char started;    /* resumed once: its coroutine must be suspended */
  unsigned char cancelled;  /* the user closed its coroutine (coroutine.close) */
  int argref;               /* registry reference to the userdata of a pool job */
  const void *jobarg;       /* arg of its last pool job, for loop_jobarg */
};

static int task_closed(lua_State *L);   /* the Task's __close */

/* ---- the poller: the only part that knows about epoll --------------- */

/* What an event says, in the bits of Watch.idle. */
enum { READY_R = 1 << WAIT_READ, READY_W = 1 << WAIT_WRITE, READY_HUP = WATCH_HUP };

typedef struct Poller {
  int fd;
  struct epoll_event ev[POLL_BATCH];
} Poller;

static int poller_init(Poller *p) {
  p->fd = epoll_create1(EPOLL_CLOEXEC);
  return p->fd < 0 ? errno : 0;
}

/* Register w for good: both directions, edge-triggered, so that it never
** needs re-arming; EPOLLRDHUP wakes a reader when the peer shuts down. */
static int poller_add(Poller *p, Watch *w) {
  struct epoll_event ev;
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
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
  if (e & (EPOLLERR | EPOLLHUP)) return READY_R | READY_W | READY_HUP;
  if (e & (EPOLLIN | EPOLLPRI)) r |= READY_R;
  if (e & EPOLLRDHUP) r |= READY_R | READY_HUP;
  if (e & EPOLLOUT) r |= READY_W;
  return r;
}

static void poller_close(Poller *p) {
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
}

/* ---- the loop -------------------------------------------------------- */

struct Loop {
  Poller poller;
  Pool *pool;               /* helper threads, or NULL if it failed */
  Watch poolw;              /* the pool's eventfd */
  int closed, running;      /* running: run or a turn (loop_turn) is active */
  int failed;               /* a task failed: its error is at &error_key */
  int ntasks;               /* tasks spawned and not ended */
  Task **runq;              /* ring of ready tasks, capacity >= ntasks */
  unsigned qhead, qcount, qcap;
  Task **heap;              /* timer heap on deadline, capacity >= ntasks */
  int nheap, heapcap;
};

/* ---- run queue: a ring that never grows while the loop runs --------- */

/* Make room for one more task in the run queue and in the heap; called by
** spawn, so that pushing and inserting later can never fail. */
static void loop_reserve(lua_State *L, Loop *loop) {
  unsigned need = (unsigned)loop->ntasks + 1;
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
    Task **h = (Task **)realloc(loop->heap, (size_t)cap * sizeof *h);
    if (h == NULL) luaL_error(L, "not enough memory");
    loop->heap = h, loop->heapcap = cap;
  }
}

static void runq_push(Loop *loop, Task *t) {
  if (t->inq) return;   /* a user resumed a queued task himself: once is enough */
  t->inq = 1;
  loop->runq[(loop->qhead + loop->qcount++) & (loop->qcap - 1)] = t;
}

static Task *runq_pop(Loop *loop) {
  Task *t = loop->runq[loop->qhead];
  loop->qhead = (loop->qhead + 1) & (loop->qcap - 1);
  loop->qcount--;
  t->inq = 0;
  return t;
}

/* ---- timer heap: binary min-heap on deadline, tasks know their index - */

static void heap_set(Loop *loop, int i, Task *t) {
  loop->heap[i] = t;
  t->heapidx = i;
}

static void heap_up(Loop *loop, int i) {
  Task *t = loop->heap[i];
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (loop->heap[parent]->deadline <= t->deadline) break;
    heap_set(loop, i, loop->heap[parent]);
    i = parent;
  }
  heap_set(loop, i, t);
}

static void heap_down(Loop *loop, int i) {
  Task *t = loop->heap[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= loop->nheap) break;
    if (c + 1 < loop->nheap && loop->heap[c + 1]->deadline < loop->heap[c]->deadline) c++;
    if (t->deadline <= loop->heap[c]->deadline) break;
    heap_set(loop, i, loop->heap[c]);
    i = c;
  }
  heap_set(loop, i, t);
}

static void heap_insert(Loop *loop, Task *t) {
  loop->heap[loop->nheap] = t;
  heap_up(loop, loop->nheap++);
}

static void heap_remove(Loop *loop, Task *t) {
  int i = t->heapidx;
  Task *last = loop->heap[--loop->nheap];
  t->heapidx = -1;
  if (last == t) return;
  heap_set(loop, i, last);
  heap_up(loop, i);
  heap_down(loop, last->heapidx);
}

/* ---- parking and waking --------------------------------------------- */

/* Take t off its watch and out of the heap, wherever it is parked. */
static void task_detach(Task *t) {
  if (t->w != NULL) {
    if (t->w->waiter[t->dir] == t) t->w->waiter[t->dir] = NULL;
    t->w = NULL;
  }
  if (t->heapidx >= 0) heap_remove(t->loop, t);
}

/* The wait of t ended with outcome: queue it to be resumed. */
static void task_ready(Task *t, int outcome) {
  task_detach(t);
  t->outcome = outcome;
  t->state = T_READY;
  runq_push(t->loop, t);
}

/* w is ready in direction dir: wake its waiter if it still waits for it. */
static void watch_wake(Watch *w, int dir) {
  Task *t = w->waiter[dir];
  if (t != NULL && t->state == T_PARKED && t->w == w && t->dir == dir)
    task_ready(t, 0);
}

void loop_wake(Watch *w) {
  if (w == turn_watch) turn_woken = 1;   /* the outside wait returns 0 */
  if (w->loop == NULL || w->loop->closed) return;   /* no task parked on it */
  watch_wake(w, WAIT_READ);
  watch_wake(w, WAIT_WRITE);
}

Task *loop_current(lua_State *L) {
  return *(Task **)lua_getextraspace(L);
}

const void *loop_jobarg(lua_State *L) {
  Task *t = loop_current(L);
  return t != NULL ? t->jobarg : NULL;
}

static void set_current(lua_State *co, Task *t) {
  *(Task **)lua_getextraspace(co) = t;
}

int loop_park(Task *t, Watch *w, int dir, double deadline) {
  Loop *loop = t->loop;
  task_detach(t);   /* only if the user resumed a parked task himself */
  if (w != NULL) {
    if (w->loop == NULL) {
      int err = poller_add(&loop->poller, w);
      if (err) return err;
      w->loop = loop;
    }
    if (w->waiter[dir] != NULL && w->waiter[dir] != t)
      luaL_error(t->co, "another task is already waiting to %s on this socket",
                 dir == WAIT_READ ? "read" : "write");
    w->waiter[dir] = t;
    t->w = w;
    t->dir = (unsigned char)dir;
  }
  t->deadline = deadline;
  if (deadline >= 0) heap_insert(loop, t);
  t->outcome = 0;
  t->state = T_PARKED;
  return 0;
}

lua_State *loop_running(void) {
  return running_co;
}

/* write(2) is async-signal-safe; the loop reads the counter back (pool's
** eventfd: pool_collect then finds no job) and checks wait_interrupted. */
void loop_wakeup(void) {
  uint64_t one = 1;
  int fd = wake_fd;
  if (fd >= 0 && write(fd, &one, sizeof one) < 0) { /* full: already awake */ }
}

int loop_outcome(Task *t) {
  return t != NULL ? t->outcome : 0;
}

void loop_unwatch(Watch *w) {
  Loop *loop = w->loop;
  select_closing(w);   /* a select need not be registered: it listed w */
  if (loop == NULL) return;
  w->loop = NULL;
  if (loop->closed) {   /* lua_close: the tasks are gone, touch nothing */
    w->waiter[0] = w->waiter[1] = NULL;
    return;
  }
  poller_del(&loop->poller, w);
  for (int dir = 0; dir < 2; dir++) {
    Task *t = w->waiter[dir];
    if (t != NULL) task_ready(t, LSOCK_ECLOSED);   /* else it would wait for ever */
  }
}

void watch_close(Watch *w) {
  if (w->fd < 0) return;
  loop_unwatch(w);
  close(w->fd);   /* on Linux the fd is released even on EINTR */
  w->fd = -1;
}

/* Deadlines that passed: a task parked on a watch times out; one parked
** on the timer only (sleep) has simply waited long enough. */
static void timers_expire(Loop *loop) {
  if (loop->nheap == 0) return;
  double now = wait_now();
  while (loop->nheap > 0 && loop->heap[0]->deadline <= now) {
    Task *t = loop->heap[0];
    task_ready(t, t->w != NULL ? LSOCK_ETIMEOUT : 0);
  }
}

/* ---- helper threads ------------------------------------------------- */

static void task_threaddone(Task *t) {
  task_ready(t, 0);
}

/* A reference to the userdata on co's stack whose block is arg, if any:
** the job writes into it, so it must outlive a coroutine.close of the
** task (which empties the stack) until the job is done. */
static int anchor_arg(lua_State *co, void *arg) {
  for (int i = lua_gettop(co); i > 0; i--) {
    if (lua_type(co, i) == LUA_TUSERDATA && lua_touserdata(co, i) == arg) {
      lua_pushvalue(co, i);
      return luaL_ref(co, LUA_REGISTRYINDEX);
    }
  }
  return LUA_NOREF;
}

int loop_parkthread(Task *t, void (*work)(void *), void *arg) {
  if (t->loop->pool == NULL) return ENOMEM;   /* inline, then */
  int ref = anchor_arg(t->co, arg);
  int err = pool_submit(t->loop->pool, t, work, arg);
  if (err) {
    luaL_unref(t->co, LUA_REGISTRYINDEX, ref);
    return err;
  }
  t->argref = ref;
  t->jobarg = arg;
  task_detach(t);
  t->outcome = 0;
  t->state = T_THREAD;
  return 0;
}

/* ---- the Loop object ------------------------------------------------- */

static Loop *loop_get(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &loop_key);
  Loop *loop = (Loop *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (loop == NULL || loop->closed) luaL_error(L, "the socket loop is closed");
  return loop;
}

/* Release everything the loop holds: join the workers, close the poller
** and the eventfd, free the arrays.  Idempotent. */
static void loop_close(Loop *loop) {
  if (loop->closed) return;
  loop->closed = 1;
  if (wake_fd == loop->poolw.fd) wake_fd = -1;
  pool_free(loop->pool);   /* joins the workers */
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
  loop_close((Loop *)lua_touserdata(L, 1));
  return 0;
}

/* The poller, and the pool with its eventfd registered; 0 or an errno. */
static int loop_init(Loop *loop) {
  loop->poller.fd = -1;
  int err = poller_init(&loop->poller);
  if (err) return err;
  loop->pool = pool_new();
  if (loop->pool == NULL) return errno;
  loop->poolw.fd = pool_fd(loop->pool);
  err = poller_add(&loop->poller, &loop->poolw);
  if (err) return err;
  loop->poolw.loop = loop;
  wake_fd = loop->poolw.fd;
  return 0;
}

void loop_prepare(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  set_current(lua_tothread(L, -1), NULL);
  lua_pop(L, 1);
}

/* Create the one Loop of this state (again: keep the first) as a userdata
** in the registry, and make "no task" the extra space every new thread
** copies from the main thread. */
void loop_open(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &loop_key) != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  loop_prepare(L);
  Loop *loop = (Loop *)lua_newuserdatauv(L, sizeof *loop, 0);
  memset(loop, 0, sizeof *loop);
  int err = loop_init(loop);
  if (luaL_newmetatable(L, LOOP_META)) {
    lua_pushcfunction(L, loop_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  luaL_newmetatable(L, TASK_META);
  lua_pushcfunction(L, task_closed);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  if (err) {
    loop_close(loop);
    luaL_error(L, "cannot create the socket loop: %s", strerror(err));
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &loop_key);
}

/* ---- tasks: spawn, resume, end --------------------------------------- */

/* Make a task of the function at index first and the arguments after it
** up to the top; pushes its coroutine.  The Task is a userdata holding the
** coroutine as user value, kept alive by a registry reference until the
** task ends.  The function and its arguments are moved, not copied: L may
** have no room for a second copy of many arguments. */
static Task *task_spawn(lua_State *L, Loop *loop, int first) {
  int n = lua_gettop(L) - first + 1;   /* the function and its arguments */
  luaL_checktype(L, first, LUA_TFUNCTION);
  loop_reserve(L, loop);
  lua_State *co = lua_newthread(L);
  if (!lua_checkstack(co, n + 1)) luaL_error(L, "too many arguments to spawn");
  Task *t = (Task *)lua_newuserdatauv(L, sizeof *t, 1);
  memset(t, 0, sizeof *t);
  t->co = co, t->loop = loop, t->heapidx = -1, t->argref = LUA_NOREF;
  t->nargs = n - 1;
  luaL_setmetatable(L, TASK_META);
  lua_pushvalue(L, -2);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, -1);
  lua_xmove(L, co, 1);
  lua_toclose(co, 1);   /* coroutine.close(co) tells us: task_closed */
  lua_rotate(L, first, -n);   /* ... co t fn args */
  lua_xmove(L, co, n);
  t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  set_current(co, t);
  loop->ntasks++;
  t->state = T_READY;
  runq_push(loop, t);
  return t;
}

/* socket.spawn(fn, ...) -> the task's coroutine; it runs under socket.run. */
static int lsock_spawn(lua_State *L) {
  task_spawn(L, loop_get(L), 1);
  return 1;
}

/* The text of the error object at idx, as lua.c shows it, or NULL; may
** call its __tostring, which may raise. */
static const char *error_text(lua_State *L, int idx) {
  const char *msg = lua_tostring(L, idx);
  if (msg != NULL) return msg;
  if (luaL_callmeta(L, idx, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    return lua_tostring(L, -1);
  return NULL;
}

/* Run protected: slot 1 a copy of the error object, 2 the task's
** coroutine (light userdata), 3 whether __tostring may be called.
** Returns the text of the report: the error's text and a traceback. */
static int report_text(lua_State *L) {
  lua_State *co = (lua_State *)lua_touserdata(L, 2);
  const char *msg = lua_toboolean(L, 3) ? error_text(L, 1) : NULL;
  if (msg == NULL)
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, co, msg, 0);
  return 1;
}

/* Push the report of the error at idx for co; 0 (nothing pushed) when
** building it raised (a __tostring that fails, no memory). */
static int report_push(lua_State *L, lua_State *co, int idx, int meta) {
  lua_pushcfunction(L, report_text);
  lua_pushvalue(L, idx);
  lua_pushlightuserdata(L, co);
  lua_pushboolean(L, meta);
  if (lua_pcall(L, 3, 1, 0) == LUA_OK) return 1;
  lua_pop(L, 1);
  return 0;
}

/* Task t failed: print its error and traceback on stderr and keep the
** first error object in the registry, for the next socket.run to return
** (the task may have run in run or in a turn of an outside wait).  The
** text is built in protected calls: the error object is the user's, and
** its __tostring may raise.  L's hook is off meanwhile: a pending Ctrl-C
** (stop_hook) must stop the code after us, not the call of report_text. */
static void task_report(lua_State *L, Task *t) {
  int top = lua_gettop(L);
  lua_Hook hook = lua_gethook(L);
  int mask = lua_gethookmask(L), count = lua_gethookcount(L);
  lua_xmove(t->co, L, 1);   /* the error: no room needed on a full stack */
  lua_sethook(L, NULL, 0, 0);
  int ok = report_push(L, t->co, top + 1, 1) || report_push(L, t->co, top + 1, 0);
  lua_sethook(L, hook, mask, count);
  fprintf(stderr, "luasock: error in task: %s\n",
          ok ? lua_tostring(L, -1) : "(no memory to describe it)");
  fflush(stderr);
  if (!t->loop->failed) {
    t->loop->failed = 1;
    lua_pushvalue(L, top + 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &error_key);
  }
  lua_settop(L, top);
}

/* t's coroutine returned or failed: let it go (first, so that nothing
** below can leave run counting a dead task), report a failure, and close
** its pending to-be-closed variables (it is no task any more while they
** run, so a socket operation there blocks instead of yielding).  The Task
** stays on L's stack meanwhile, its coroutine with it. */
static void task_end(lua_State *L, Task *t, int status) {
  lua_State *co = t->co;
  set_current(co, NULL);
  t->state = T_DONE;   /* before task_closed runs */
  t->loop->ntasks--;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
  luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
  if (status != LUA_OK) {
    task_report(L, t);
#if LUA_VERSION_RELEASE_NUM >= 50406
    lua_closethread(co, L);
#else
    lua_resetthread(co);
#endif
    lua_settop(co, 0);   /* reset left the error there: status "dead", not "suspended" */
  } else if (!t->cancelled && lua_status(co) == LUA_OK) {
    lua_settop(co, 0);   /* drop our marker and the results: status "dead" */
  }
  lua_pop(L, 1);
}

/* __close of the Task, the to-be-closed value under the task's function:
** coroutine.close(co) of a task that has not ended (a cancel).  A parked
** task is woken to end at once; one in the run queue or the thread pool
** ends when its turn comes. */
static int task_closed(lua_State *L) {
  Task *t = (Task *)lua_touserdata(L, 1);
  if (t->state == T_DONE) return 0;
  t->cancelled = 1;
  if (t->state == T_PARKED) task_ready(t, LSOCK_ECLOSED);
  return 0;
}

/* Resume t.  A yield that parked it (state changed) is a wait; a yield
** that did not is the user's own coroutine.yield: the task goes to the
** back of the run queue, giving the others the CPU.  A task whose
** coroutine the user closed (coroutine.close) just ends. */
static void task_resume(lua_State *L, Task *t) {
  int nres, nargs = t->nargs;
  if (t->argref != LUA_NOREF) {   /* back from the pool: the job is done */
    luaL_unref(L, LUA_REGISTRYINDEX, t->argref);
    t->argref = LUA_NOREF;
  }
  if (t->cancelled || (t->started && lua_status(t->co) != LUA_YIELD)) {
    task_end(L, t, LUA_OK);   /* the user closed or finished it himself */
    return;
  }
  t->started = 1;
  t->nargs = 0;
  t->state = T_RUNNING;
  lua_State *outer = running_co;
  running_co = t->co;
  int status = lua_resume(t->co, L, nargs, &nres);
  running_co = outer;
  if (wait_interrupted) lua_sethook(t->co, NULL, 0, 0);   /* an unfired stop_hook */
  if (status == LUA_YIELD) {
    lua_pop(t->co, nres);
    if (t->state == T_RUNNING) {
      t->state = T_READY;
      runq_push(t->loop, t);
    }
  } else {
    task_end(L, t, status);
  }
}

/* Resume the tasks that are ready now; those made ready meanwhile wait
** for the next round, after a look at the poller. */
static void run_ready(lua_State *L, Loop *loop) {
  for (unsigned n = loop->qcount; n > 0 && loop->qcount > 0; n--) {
    if (wait_interrupted) wait_checkinterrupt(L);   /* before: a task resumed now has no hook */
    Task *t = runq_pop(loop);
    if (t->state == T_READY) task_resume(L, t);
  }
}

/* Wait up to ms for events and mark their tasks ready. */
static void poll_events(lua_State *L, Loop *loop, int ms) {
  int n = poller_wait(&loop->poller, ms);
  if (n < 0) {
    if (errno != EINTR) luaL_error(L, "epoll_wait: %s", strerror(errno));
    wait_checkinterrupt(L);   /* Ctrl-C raises; another signal: no events */
    return;
  }
  for (int i = 0; i < n; i++) {
    Watch *w;
    int ready = poller_get(&loop->poller, i, &w);
    if (w == &loop->poolw) { pool_collect(loop->pool, task_threaddone); continue; }
    w->idle = (unsigned char)((w->idle & ~ready) | (ready & READY_HUP));   /* try again */
    if (ready & READY_R) watch_wake(w, WAIT_READ);
    if (ready & READY_W) watch_wake(w, WAIT_WRITE);
  }
}

/* Wait for events (not at all when tasks are ready; else until the
** nearest deadline) and mark their tasks ready. */
static void run_poll(lua_State *L, Loop *loop) {
  int ms = loop->qcount ? 0 : loop->nheap ? wait_ms(loop->heap[0]->deadline) : -1;
  if (wait_interrupted) wait_checkinterrupt(L);   /* later, loop_wakeup ends the wait */
  poll_events(L, loop, ms);
}

/* Push run's results: true, nil; or false and the first error kept since
** the last time run returned, which is then forgotten. */
static int run_results(lua_State *L, Loop *loop) {
  if (!loop->failed) {
    lua_pushboolean(L, 1);
    lua_pushnil(L);
    return 2;
  }
  loop->failed = 0;
  lua_pushboolean(L, 0);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &error_key);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &error_key);   /* let it be collected */
  return 2;
}

/* The loop proper, run protected by lsock_run: slot 1 the Loop. */
static int run_core(lua_State *L) {
  Loop *loop = (Loop *)lua_touserdata(L, 1);
  while (loop->ntasks > 0) {
    run_ready(L, loop);
    if (loop->ntasks == 0) break;
    run_poll(L, loop);
    timers_expire(loop);
  }
  return run_results(L, loop);
}

/* ---- outside waits turn the loop ------------------------------------ */

/* The Loop of L when an outside wait should turn it: tasks exist and
** neither run nor another turn is active; else NULL. */
static Loop *loop_idle(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &loop_key);
  Loop *loop = (Loop *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (loop == NULL || loop->closed || loop->running || loop->ntasks == 0) return NULL;
  return loop;
}

/* One look at p[0] (the outside descriptor, ignored when < 0) and p[1]
** (the epoll fd, readable when task events are pending), up to the
** outside deadline or the nearest timer.  Returns 0 when p[0] is ready,
** LSOCK_ETIMEOUT past the deadline, else EAGAIN (tasks may be ready). */
static int turn_poll(lua_State *L, Loop *loop, struct pollfd *p, double deadline) {
  int ms = loop->qcount ? 0 : wait_ms(deadline);
  if (ms != 0 && loop->nheap > 0) {
    int timer = wait_ms(loop->heap[0]->deadline);
    if (ms < 0 || timer < ms) ms = timer;
  }
  if (wait_interrupted) wait_checkinterrupt(L);   /* later, loop_wakeup ends the poll */
  int n = poll(p, 2, ms);
  if (n < 0) {
    if (errno != EINTR) luaL_error(L, "poll: %s", strerror(errno));
    wait_checkinterrupt(L);
    return EAGAIN;
  }
  if (p[0].revents) return 0;   /* ready, or an error the syscall will report */
  if (p[1].revents) poll_events(L, loop, 0);
  if (deadline >= 0 && wait_now() >= deadline) return LSOCK_ETIMEOUT;
  return EAGAIN;
}

/* After the tasks ran: LSOCK_ECLOSED when one closed w (its number may
** already name another socket, so it must not be polled), 0 when one
** called loop_wake(w), else EAGAIN (wait on). */
static int turn_check(Watch *w) {
  if (w == NULL) return EAGAIN;
  if (w->fd < 0) return LSOCK_ECLOSED;
  if (turn_woken) return 0;
  return EAGAIN;
}

/* The turn proper, run protected by loop_turn: slots 1 the Loop, 2 the
** Watch (or NULL), 3 the poll events, 4 the deadline.  Pushes the
** outcome, EAGAIN when no task is left before it (the caller then polls
** alone).  w->fd is read again before each poll: tasks ran since. */
static int turn_core(lua_State *L) {
  Loop *loop = (Loop *)lua_touserdata(L, 1);
  Watch *w = (Watch *)lua_touserdata(L, 2);
  struct pollfd p[2] = {
    { -1, (short)lua_tointeger(L, 3), 0 },
    { loop->poller.fd, POLLIN, 0 },
  };
  double deadline = lua_tonumber(L, 4);
  int res = EAGAIN;
  while (loop->ntasks > 0) {
    run_ready(L, loop);
    if ((res = turn_check(w)) != EAGAIN || loop->ntasks == 0) break;
    p[0].fd = w != NULL ? w->fd : -1;
    res = turn_poll(L, loop, p, deadline);
    if (res != EAGAIN) break;
    timers_expire(loop);
  }
  lua_pushinteger(L, res);
  return 1;
}

int loop_turn(lua_State *L, Watch *w, short events, double deadline) {
  Loop *loop = loop_idle(L);
  if (loop == NULL) return EAGAIN;
  luaL_checkstack(L, 5, "no room to wait");
  lua_pushcfunction(L, turn_core);
  lua_pushlightuserdata(L, loop);
  lua_pushlightuserdata(L, w);
  lua_pushinteger(L, events);
  lua_pushnumber(L, deadline);
  loop->running = 1;   /* a task calling run now raises; nested waits poll alone */
  turn_watch = w, turn_woken = 0;
  int status = lua_pcall(L, 4, 1, 0);
  turn_watch = NULL, turn_woken = 0;
  loop->running = 0;
  if (status != LUA_OK) lua_error(L);   /* "interrupted!" goes to the outside code */
  int res = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return res;
}

/* socket.run([fn, ...]) -> true, or false and the first error of a task
** that failed since run last returned (in run, or in a turn of an outside
** wait).  Runs until no task is left; raises when called from a task. */
static int lsock_run(lua_State *L) {
  Loop *loop = loop_get(L);
  if (loop->running) return luaL_error(L, "socket.run called from inside a task");
  if (!lua_isnoneornil(L, 1)) task_spawn(L, loop, 1);
  lua_settop(L, 0);
  lua_pushcfunction(L, run_core);
  lua_pushlightuserdata(L, loop);
  loop->running = 1;
  int status = lua_pcall(L, 1, 2, 0);
  loop->running = 0;
  if (status != LUA_OK) return lua_error(L);
  return 2;
}

const luaL_Reg loop_funcs[] = {
  {"spawn", lsock_spawn},
  {"run", lsock_run},
  {NULL, NULL}
};

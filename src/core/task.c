/*
** task.c - tasks: spawn, resume and end (with the report of a task that
** failed), and the two drivers that resume them: socket.run, and outside
** waits that turn the loop.  The scheduler core they drive (poller, run
** queue, timer heap, parking and waking) is loop.c; the records both
** share are in loop_internal.h.
**
** While code outside any task waits (a blocking call on the main thread,
** the REPL waiting for a key), the loop keeps turning: task_turn resumes
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
** Name resolution outside a task runs on a helper thread too, and waits
** for it the same way (task_waitjob), so the tasks go on meanwhile and a
** deadline scope or Ctrl-C ends it.
**
** Left out: blocking calls made in a coroutine the user resumes himself
** inside a task block the whole loop, as they would outside a task.
*/
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "loop_internal.h"
#include "base/errors.h"
#include "base/aux.h"
#include "core/clock.h"
#include "core/interrupt.h"
#include "core/loop.h"
#include "core/wait.h"

static const char error_key = 0;  /* registry key of the first error not yet returned by run */
enum { ANCHOR_UV = 2 };   /* the Task's user value of its anchors (task_anchor) */

/* ---- tasks: spawn, resume, end --------------------------------------- */

static Task *task_check(lua_State *L, int idx) {
  return (Task *)luaL_checkudata(L, idx, TASK_META);
}

/* The tasks not let go, each at its reference t->ref in one table (kept
** in the registry at loop->live): that slot keeps the Task alive, and
** socket.tasks walks the table, in about the order of spawning, for those
** that have not ended.  luaL_ref's free list lives in the same table, as
** integers. */
void task_pushlive(lua_State *L, Loop *loop) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->live);
}

/* Push the Task object of t, which has not been let go. */
static void task_pushself(lua_State *L, Task *t) {
  task_pushlive(L, t->loop);
  lua_rawgeti(L, -1, t->ref);
  lua_remove(L, -2);
}

/* Make a task of the function at index first and the arguments after it
** up to the top; pushes its coroutine.  The Task is a userdata holding the
** coroutine as user value, kept alive by a registry reference until the
** task ends.  The function and its arguments are moved, not copied: L may
** have no room for a second copy of many arguments. */
static Task *task_spawn(lua_State *L, Loop *loop, int first) {
  int n = lua_gettop(L) - first + 1;   /* the function and its arguments */
  luaL_checktype(L, first, LUA_TFUNCTION);
  loop_reserve(L, loop);
  /* Tasks wait: start the loop while descriptors remain (a server's
  ** listener must not find them gone at its first wait).  If it cannot,
  ** the first wait tries again. */
  (void)loop_start(loop);
  lua_State *co = lua_newthread(L);
  if (!lua_checkstack(co, n + 1)) luaL_error(L, "too many arguments to spawn");
  Task *t = (Task *)lua_newuserdatauv(L, sizeof *t, ANCHOR_UV);
  memset(t, 0, sizeof *t);
  t->co = co, t->loop = loop, t->heapidx = -1;
  t->nargs = n - 1;
  luaL_setmetatable(L, TASK_META);
  lua_pushvalue(L, -2);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, -1);
  lua_xmove(L, co, 1);
  lua_toclose(co, 1);   /* coroutine.close(co) tells us: task_closed */
  lua_rotate(L, first, -n);   /* ... co t fn args */
  lua_xmove(L, co, n);
  task_pushlive(L, loop);
  lua_pushvalue(L, -2);
  t->ref = luaL_ref(L, -2);
  lua_pop(L, 1);
  lua_remove(L, -2);   /* ... t */
  loop_setcurrent(co, t);
  loop->ntasks++;
  t->state = T_READY;
  loop_runqpush(loop, t);
  return t;
}

/* socket.spawn(fn, ...) -> the Task; it runs when the loop turns. */
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

/* Task t failed with the error at idx: print it and its traceback on
** stderr and keep the first error object in the registry, for the next
** socket.run to return (the task may have run in run or in a turn of an
** outside wait).  The text is built in protected calls: the error object
** is the user's, and its __tostring may raise.  L's hook is off
** meanwhile: a pending Ctrl-C (stop_hook) must stop the code after us,
** not the call of report_text. */
static void task_report(lua_State *L, Task *t, int idx) {
  int top = lua_gettop(L);
  lua_Hook hook = lua_gethook(L);
  int mask = lua_gethookmask(L), count = lua_gethookcount(L);
  lua_sethook(L, NULL, 0, 0);
  int ok = report_push(L, t->co, idx, 1) || report_push(L, t->co, idx, 0);
  lua_sethook(L, hook, mask, count);
  fprintf(stderr, "luasock: error in task: %s\n",
          ok ? lua_tostring(L, -1) : "(no memory to describe it)");
  fflush(stderr);
  if (!t->loop->failed) {
    t->loop->failed = 1;
    lua_pushvalue(L, idx);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &error_key);
  }
  lua_settop(L, top);
}

/* Push a table of the nres values on top of co, popped one by one (L has
** room for two more values; co may have none), with their count in n. */
static void results_pack(lua_State *L, lua_State *co, int nres) {
  lua_createtable(L, nres, 1);
  for (int i = nres; i > 0; i--) {
    lua_xmove(co, L, 1);
    lua_rawseti(L, -2, i);
  }
  lua_pushinteger(L, nres);
  lua_setfield(L, -2, "n");
}

/* Close co's pending to-be-closed variables (the task's <close>
** sockets); returns the status, an error of a __close on co's top. */
static int close_thread(lua_State *co, lua_State *L) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, L);
#else
  (void)L;
  return lua_resetthread(co);
#endif
}

/* The end of t is known: wake whoever joins it (task_join). */
static void join_wake(lua_State *L, Task *t) {
  if (!t->joined) return;
  t->joined = 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, t);
  WaitList *list = (WaitList *)lua_touserdata(L, -1);
  if (list != NULL) waitlist_wakeall(list, 0);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, t);
}

/* Drop the task table's hold on an ended task, unless the run queue
** still names it: then run_ready lets it go later (a helper thread's job
** holds the Task itself, loop.c's job_start). */
static void task_letgo(lua_State *L, Task *t, int held) {
  if (t->inq) {
    if (!held) t->loop->nheld++;
    return;
  }
  if (held) t->loop->nheld--;
  task_anchor(L, t, 0, 0);   /* what its last wait pointed into may go */
  task_pushlive(L, t->loop);
  luaL_unref(L, -1, t->ref);
  lua_pop(L, 1);
  t->ref = LUA_NOREF;
}

/* t ended as how says, its results (END_OK) the nres values on top of
** its coroutine (lua_resume counts our marker below them too), its error
** (END_FAILED) on top of it.  It is let go first
** (nothing below can leave run counting a dead task), a failure is
** reported, its pending to-be-closed variables close (it is no task any
** more while they run, so a socket operation there blocks instead of
** yielding), the deadline scopes it was in are shut, join's answer
** replaces the coroutine as the Task's user value, and its joiners wake. */
static void task_end(lua_State *L, Task *t, int how, int nres) {
  lua_State *co = t->co;
  luaL_checkstack(L, 6, "no room to end a task");
  loop_unpark(t);   /* it failed with an error raised after its park (out of memory) */
  loop_setcurrent(co, &t->loop->outside);
  t->state = T_DONE;   /* before task_closed runs */
  t->end = (unsigned char)how;
  t->loop->ntasks--;
  task_pushself(L, t);
  int self = lua_gettop(L);
  if (how == END_FAILED) {
    lua_xmove(co, L, 1);   /* the error: no room needed on a full stack */
    task_report(L, t, self + 1);
  } else if (how == END_OK && nres > 1) {
    results_pack(L, co, nres - 1);
  } else {
    lua_pushnil(L);
  }
  int prior = lua_status(co);   /* an error here was raised to the script that resumed it */
  if (how == END_OK && prior == LUA_OK) lua_settop(co, 0);   /* status "dead" */
  else if (close_thread(co, L) == LUA_OK || how == END_FAILED || prior != LUA_YIELD)
    lua_settop(co, 0);
  else {   /* a __close of a cancelled task raised: it failed */
    lua_pop(L, 1);
    lua_xmove(co, L, 1);
    t->end = END_FAILED;
    task_report(L, t, self + 1);
    lua_settop(co, 0);
  }
  lua_getiuservalue(L, self, 1);
  scope_endthread(L, t->loop, -1);   /* after its __close calls, which may wait in them */
  lua_pop(L, 1);
  lua_setiuservalue(L, self, 1);   /* the coroutine goes */
  t->co = NULL;
  join_wake(L, t);
  task_letgo(L, t, 0);
  lua_pop(L, 1);
}

/* __close of the Task, the to-be-closed value under the task's function:
** coroutine.close(co) of a task that has not ended.  A waiting task is
** woken to end at once (a helper thread's job goes on alone); one in the
** run queue ends when its turn comes. */
int task_closed(lua_State *L) {
  Task *t = task_check(L, 1);
  if (t->state == T_DONE) return 0;
  t->cancelled = 1;
  if (t->state == T_PARKED || t->state == T_THREAD) loop_ready(t, LSOCK_ECANCELLED);
  return 0;
}

/* What a task's coroutine is when the loop comes to resume it: the
** script may have resumed it itself (coroutine.resume), to its end, to
** an error, or to a point where it runs still (it resumed another
** coroutine that called socket.run). */
enum { CO_FRESH, CO_YIELDED, CO_ACTIVE, CO_DEAD };

static int co_state(lua_State *co) {
  lua_Debug ar;
  int status = lua_status(co);
  if (status == LUA_YIELD) return CO_YIELDED;
  if (status != LUA_OK) return CO_DEAD;   /* it raised */
  if (lua_getstack(co, 0, &ar)) return CO_ACTIVE;
  return lua_gettop(co) > 0 ? CO_FRESH : CO_DEAD;
}

/* Whether t, whose coroutine is in costate, is to end now rather than
** run: the user closed its coroutine, or a cancel ended its wait or came
** before it ever ran. */
static int task_mustend(Task *t, int costate) {
  if (costate == CO_DEAD) return 1;
  return t->cancelled && (costate == CO_FRESH || t->outcome == LSOCK_ECANCELLED);
}

/* ---- the record of the wait a task is in ---------------------------- */

Op *task_op(Task *t) {
  return &t->op;
}

/* A Task's user value 2 anchors what the Op of its wait points into:
** the one value (most waits: their socket), or a table of both (t->pair)
** once a wait needed two.  That table stays for the task's later waits,
** so that a task that alternates waits of one and of two values
** allocates it once. */

/* Push the table of t's two anchors, made on first use; the Task is on
** top of L. */
static void pair_push(lua_State *L, Task *t) {
  if (t->pair) {
    lua_getiuservalue(L, -1, ANCHOR_UV);
    return;
  }
  lua_createtable(L, 2, 0);
  lua_getiuservalue(L, -2, ANCHOR_UV);   /* the one value so far: anchor 0 */
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, -3, ANCHOR_UV);
  t->pair = 1;
}

void task_anchor(lua_State *L, Task *t, int a0, int a1) {
  t->op.selfanchor = 0;   /* op_save says again what they are */
  luaL_checkstack(L, 5, "no room to wait");
  task_pushself(L, t);
  if (!t->pair && a1 == 0) {
    if (a0 != 0) lua_pushvalue(L, a0);
    else lua_pushnil(L);
    lua_setiuservalue(L, -2, ANCHOR_UV);
  } else {
    pair_push(L, t);
    for (int i = 0; i < 2; i++) {
      int idx = i == 0 ? a0 : a1;
      if (idx != 0) lua_pushvalue(L, idx);
      else lua_pushnil(L);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void task_pushanchor(lua_State *L, Task *t, int i) {
  task_pushself(L, t);
  if (t->pair) {
    lua_getiuservalue(L, -1, ANCHOR_UV);
    lua_rawgeti(L, -1, i + 1);
    lua_remove(L, -2);
  } else if (i == 0) {
    lua_getiuservalue(L, -1, ANCHOR_UV);
  } else {
    lua_pushnil(L);
  }
  lua_remove(L, -2);
}

void task_setanchor(lua_State *L, Task *t, int i) {
  luaL_checkstack(L, 3, "no room to wait");
  task_pushself(L, t);
  if (t->pair || i != 0) {
    pair_push(L, t);
    lua_rotate(L, -3, -1);   /* t, pair, value */
    lua_rawseti(L, -2, i + 1);
    lua_pop(L, 2);
  } else {
    lua_rotate(L, -2, 1);
    lua_setiuservalue(L, -2, ANCHOR_UV);
    lua_pop(L, 1);
  }
}

Task *task_ofop(const Op *op) {
  return (Task *)(void *)((char *)op - offsetof(Task, op));
}

/* Resume t.  A yield that parked it (state changed) is a wait; a yield
** that did not is the user's own coroutine.yield: the task goes to the
** back of the run queue, giving the others the CPU. */
static void task_resume(lua_State *L, Task *t) {
  int nres;
  int costate = co_state(t->co);
  int nargs = costate == CO_FRESH ? t->nargs : 0;   /* else the field is its outcome */
  if (costate == CO_ACTIVE) {   /* run was called from a coroutine it resumed */
    loop_runqpush(t->loop, t);   /* stays ready for a later run */
    luaL_error(L, "socket.run called while a task runs outside the loop");
  }
  if (task_mustend(t, costate)) {
    if (t->outcome == 0) wait_handback(L, &t->op);   /* closed just after a hand-off */
    task_end(L, t, t->cancelled ? END_CANCELLED : END_OK, 0);
    return;
  }
  t->state = T_RUNNING;
  lua_State *outer = t->loop->resumed;
  t->loop->resumed = t->co;   /* for luasock_interrupt */
  int status = lua_resume(t->co, L, nargs, &nres);
  t->loop->resumed = outer;
  if (t->loop->interrupted) lua_sethook(t->co, NULL, 0, 0);   /* an unfired stop_hook */
  if (status == LUA_YIELD) {
    if (nres > 0) lua_pop(t->co, nres);   /* a wait yields none */
    if (t->state == T_RUNNING) {
      t->state = T_READY;
      loop_runqpush(t->loop, t);
    }
  } else {
    task_end(L, t, status == LUA_OK ? END_OK : END_FAILED, nres);
  }
}

/* Resume the tasks that are ready now; those made ready meanwhile wait
** for the next round, after a look at the poller. */
static void run_ready(lua_State *L, Loop *loop) {
  for (unsigned n = loop->qcount; n > 0 && loop->qcount > 0; n--) {
    if (loop->interrupted) interrupt_check(L);   /* before: a task resumed now has no hook */
    Task *t = loop_runqpop(loop);
    if (t->state == T_READY) task_resume(L, t);
    else if (t->state == T_DONE) task_letgo(L, t, 1);   /* ended while queued */
  }
  if (loop->qcount == 0) loop->qhead = 0;   /* an emptied ring starts again (loop_reserve) */
}

/* Wait for events (not at all when tasks are ready; else until the
** nearest deadline) and mark their tasks ready. */
static void run_poll(lua_State *L, Loop *loop) {
  int ms = loop->qcount ? 0 : loop->nheap ? clock_ms(loop->heap[0].deadline) : -1;
  if (loop->interrupted) interrupt_check(L);   /* later, loop_wakeup ends the wait */
  loop_pollevents(L, loop, ms);
}

/* Push run's results: true; or false and the first error kept since the
** last time run returned, which is then forgotten. */
static int run_results(lua_State *L, Loop *loop) {
  if (!loop->failed) {
    lua_pushboolean(L, 1);
    return 1;
  }
  loop->failed = 0;
  lua_pushboolean(L, 0);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &error_key);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &error_key);   /* let it be collected */
  return 2;
}

/* The loop proper, run protected by lsock_run: slot 1 the Loop.  It also
** lets go of the ended tasks still in the run queue (nheld). */
static int run_core(lua_State *L) {
  Loop *loop = (Loop *)lua_touserdata(L, 1);
  while (loop->ntasks > 0 || loop->nheld > 0) {
    run_ready(L, loop);   /* also lets go of the ended tasks it finds queued */
    if (loop->ntasks == 0 && loop->nheld == 0) break;
    run_poll(L, loop);
    loop_expire(loop);
  }
  return run_results(L, loop);
}

/* ---- outside waits turn the loop ------------------------------------ */

/* One look at p[0] (the outside descriptor, ignored when < 0) and p[1]
** (the epoll fd, readable when task events are pending), up to the
** outside deadline or the nearest timer.  Returns 0 when p[0] is ready,
** LSOCK_ETIMEOUT past the deadline, else EAGAIN (tasks may be ready). */
static int turn_poll(lua_State *L, Loop *loop, struct pollfd *p, double deadline) {
  int ms = loop->qcount ? 0 : clock_ms(deadline);
  if (ms != 0 && loop->nheap > 0) {
    int timer = clock_ms(loop->heap[0].deadline);
    if (ms < 0 || timer < ms) ms = timer;
  }
  if (loop->interrupted) interrupt_check(L);   /* later, loop_wakeup ends the poll */
  int n = poll(p, 2, ms);
  if (n < 0) {
    if (errno != EINTR) luaL_error(L, "poll: %s", strerror(errno));
    interrupt_check(L);
    return EAGAIN;
  }
  if (p[0].revents) return 0;   /* ready, or an error the syscall will report */
  if (p[1].revents) loop_pollevents(L, loop, 0);
  if (deadline >= 0 && clock_now() >= deadline) return LSOCK_ETIMEOUT;
  return EAGAIN;
}

/* After the tasks ran: LSOCK_ECLOSED when one closed w (its number may
** already name another socket, so it must not be polled), 0 when one
** called loop_wake(w), else EAGAIN (wait on). */
static int turn_check(Watch *w) {
  if (w == NULL) return EAGAIN;
  if (w->fd < 0 && !w->nofd) return LSOCK_ECLOSED;
  if (w->woken) return 0;
  return EAGAIN;
}

/* The outside deadline passed: the tasks whose timers expired meanwhile
** (a stall may have delayed them all past it) run first, in deadline
** order, as they would have had the turn been on time; one of them may
** end the wait (0, LSOCK_ECLOSED) or make p[0] ready, else it times out. */
static int turn_last(lua_State *L, Loop *loop, Watch *w, struct pollfd *p) {
  run_ready(L, loop);
  int res = turn_check(w);
  if (res != EAGAIN) return res;
  p[0].fd = w != NULL ? w->fd : -1;
  return p[0].fd >= 0 && poll(p, 1, 0) > 0 ? 0 : LSOCK_ETIMEOUT;
}

/* The turn proper, run protected by task_turn: slots 1 the Loop, 2 the
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
    p[1].fd = loop->poller.fd;   /* a task may have started the loop */
    res = turn_poll(L, loop, p, deadline);
    loop_expire(loop);
    if (res == LSOCK_ETIMEOUT) res = turn_last(L, loop, w, p);
    if (res != EAGAIN) break;
  }
  lua_pushinteger(L, res);
  return 1;
}

int task_turn(lua_State *L, Watch *w, short events, double deadline) {
  Loop *loop = loop_idle(L);
  if (loop == NULL) return EAGAIN;
  luaL_checkstack(L, 5, "no room to wait");
  lua_pushcfunction(L, turn_core);
  lua_pushlightuserdata(L, loop);
  lua_pushlightuserdata(L, w);
  lua_pushinteger(L, events);
  lua_pushnumber(L, deadline);
  loop->running = 1;   /* a task calling run now raises; nested waits poll alone */
  if (w != NULL) w->woken = 0;
  int status = lua_pcall(L, 4, 1, 0);
  loop->running = 0;
  if (status != LUA_OK) lua_error(L);   /* "interrupted!" goes to the outside code */
  int res = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return res;
}

/* One look at the pool's eventfd alone (no task is left to turn the
** loop), up to deadline: the jobs that ended are collected.  Returns
** LSOCK_ETIMEOUT past the deadline, else EAGAIN; Ctrl-C raises. */
static int job_poll(lua_State *L, Loop *loop, double deadline) {
  struct pollfd p = { loop->poolw.fd, POLLIN, 0 };
  if (loop->interrupted) interrupt_check(L);   /* later, loop_wakeup ends the poll */
  int n = poll(&p, 1, clock_ms(deadline));
  if (n < 0) {
    if (errno != EINTR) luaL_error(L, "poll: %s", strerror(errno));
    interrupt_check(L);
  }
  if (n > 0) loop_collectjobs(L, loop);
  if (deadline >= 0 && clock_now() >= deadline) return LSOCK_ETIMEOUT;
  return EAGAIN;
}

/* Ctrl-C or a deadline leaves loop->outjob naming the request: its job's
** end then wakes nobody, and the next outside job names another (its
** request stays alive until the job ended). */
int task_waitjob(lua_State *L, void (*work)(void *), int req, double deadline) {
  Loop *loop = loop_of(L);
  if (loop == NULL || loop_startoutside(L, loop, work, req) != 0) return EAGAIN;
  const void *arg = lua_touserdata(L, req);
  while (loop->outjob == arg) {
    int err = task_turn(L, &loop->outjobw, 0, deadline);
    if (err == EAGAIN) err = job_poll(L, loop, deadline);
    if (err == LSOCK_ETIMEOUT) return err;
  }
  return 0;
}

/* socket.run([fn, ...]) -> true, or false and the first error of a task
** that failed since run last returned (in run, or in a turn of an outside
** wait).  Runs until no task is left; raises when called from a task. */
int lsock_run(lua_State *L) {
  Loop *loop = loop_get(L);
  if (loop->running || loop_current(L) != NULL)   /* also a task the script resumed */
    return luaL_error(L, "socket.run called from inside a task");
  if (!lua_isnoneornil(L, 1)) task_spawn(L, loop, 1);
  lua_settop(L, 0);
  lua_pushcfunction(L, run_core);
  lua_pushlightuserdata(L, loop);
  loop->running = 1;
  int status = lua_pcall(L, 1, LUA_MULTRET, 0);
  loop->running = 0;
  if (status != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

/* ---- the Task object: join, cancel, status --------------------------- */

static const char *const end_names[] = { "done", "failed", "cancelled" };

/* The state a script sees: "ready", "waiting", or how it ended; "running"
** only from the task itself (or a coroutine it resumes): only one task
** runs at a time, and the loop does not run meanwhile. */
static const char *task_statusname(const Task *t) {
  switch (t->state) {
    case T_READY: return "ready";
    case T_RUNNING: return "running";
    case T_DONE: return end_names[t->end];
    default: return "waiting";
  }
}

/* t:status() -> "ready", "waiting", "done", "failed", "cancelled"; "running"
** for the task asking about itself. */
static int task_status(lua_State *L) {
  lua_pushstring(L, task_statusname(task_check(L, 1)));
  return 1;
}

/* Add to the buffer what the waiting t waits in: the name of the call
** its coroutine is suspended in and, when its first argument (or, for a
** call on the retry driver, the object its record anchors first) is a
** userdata (a socket, a queue), that object as tostring shows it. */
static void describe_wait(luaL_Buffer *b, lua_State *L, Task *t) {
  lua_Debug ar;
  if (t->onwatch)
    lua_pushfstring(L, " to %s fd %d", t->dir == WAIT_READ ? "read" : "write", t->op.w->fd);
  else
    lua_pushliteral(L, "");
  luaL_addvalue(b);
  if (!lua_getstack(t->co, 0, &ar) || !lua_getinfo(t->co, "n", &ar) || ar.name == NULL) return;
  lua_pushfstring(L, " in %s", ar.name);
  luaL_addvalue(b);
  if (lua_checkstack(t->co, 1) && lua_getlocal(t->co, &ar, 1) != NULL) lua_xmove(t->co, L, 1);
  else task_pushanchor(L, t, 0);   /* a call on the driver: its object is in the Task */
  if (lua_type(L, -1) == LUA_TUSERDATA && luaL_getmetafield(L, -1, "__name") != LUA_TNIL) {
    lua_pop(L, 1);
    luaL_addstring(b, " on ");
    luaL_tolstring(L, -1, NULL);
    lua_remove(L, -2);
    luaL_addvalue(b);
  } else {
    lua_pop(L, 1);
  }
}

/* tostring(t): "task 0x...: waiting to read fd 7 in recv on socket (...),
** 1.5 s left", "task 0x...: done"... */
static int task_tostring(lua_State *L) {
  Task *t = task_check(L, 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "task %p: %s", (void *)t, task_statusname(t));
  luaL_addvalue(&b);
  if (t->state == T_PARKED || t->state == T_THREAD) {
    describe_wait(&b, L, t);
    if (t->state == T_THREAD) luaL_addstring(&b, " (on a helper thread)");
    if (t->heapidx >= 0) {
      char left[32];
      snprintf(left, sizeof left, ", %.3f s left", t->loop->heap[t->heapidx].deadline - clock_now());
      luaL_addstring(&b, left);
    }
  }
  if (t->cancelled && t->state != T_DONE) luaL_addstring(&b, " (cancel pending)");
  luaL_pushresult(&b);
  return 1;
}

/* t:cancel() -> true, or false when t had already ended.  A task that
** waits (or has not started) ends now: its <close> variables close and
** join gives false, "cancelled".  The running task, and one whose wait
** just ended, end at their next wait. */
static int task_cancel(lua_State *L) {
  Task *t = task_check(L, 1);
  if (t->state == T_DONE) {
    lua_pushboolean(L, 0);
    return 1;
  }
  t->cancelled = 1;
  lua_pushboolean(L, 1);
  if (t->state == T_RUNNING) return 1;
  int costate = co_state(t->co);
  if (costate == CO_DEAD || costate == CO_ACTIVE) return 1;   /* the user closed it or runs it */
  if (t->state == T_READY && costate == CO_YIELDED && t->outcome != LSOCK_ECANCELLED)
    return 1;   /* its wait is over: it ends at the next one */
  loop_unpark(t);
  task_end(L, t, END_CANCELLED, 0);
  return 1;
}

/* Push join's answer for the ended task t at idx: true and its results,
** false and its error, or false, "cancelled". */
static int join_results(lua_State *L, Task *t, int idx) {
  luaL_checkstack(L, 3, "too many results to join");
  lua_pushboolean(L, t->end == END_OK);
  if (t->end == END_CANCELLED) {
    lua_pushliteral(L, "cancelled");
    return 2;
  }
  lua_getiuservalue(L, idx, 1);   /* the error, or the results (nil: none) */
  if (t->end == END_FAILED) return 2;
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return 1; }
  int tab = lua_gettop(L);
  lua_getfield(L, tab, "n");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results to join");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, tab, i);
  lua_remove(L, tab);
  return n + 1;
}

/* The list of those joining t, made on first use and kept in the
** registry under t's address until t ends (join_wake). */
static WaitList *join_list(lua_State *L, Task *t) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, t) == LUA_TUSERDATA) {
    WaitList *list = (WaitList *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return list;
  }
  lua_pop(L, 1);
  WaitList *list = (WaitList *)lua_newuserdatauv(L, sizeof *list, 0);
  waitlist_init(L, list);
  lua_rawsetp(L, LUA_REGISTRYINDEX, t);
  t->joined = 1;
  return list;
}

/* join's only try comes before it waits: the Task (op->obj) is running
** or waiting, so it waits for its end (join_wake). */
static int join_try(lua_State *L, Op *op) {
  (void)L, (void)op;
  return OP_WANTLIST;
}

/* The end of a join: the Task is op's anchor 0. */
static int join_push(lua_State *L, Op *op, int err, int nres) {
  Task *t = (Task *)op->obj;
  (void)nres;
  if (err == LSOCK_ECANCELLED) return 0;   /* nothing was handed */
  if (err) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  if (t->state != T_DONE) return luaL_error(L, "join woke before the task ended");
  wait_pushanchor(L, op, 0);
  return join_results(L, t, lua_gettop(L));
}

/* t:join([timeout]) -> true, results... | false, err | nil, "timeout".
** Outside a task it turns the loop until t ends. */
static int task_join(lua_State *L) {
  Task *t = task_check(L, 1);
  double timeout = aux_checktimeout(L, 2, 1, "timeout");
  lua_settop(L, 1);
  if (t->state == T_DONE) return join_results(L, t, 1);
  if (t == loop_current(L)) return luaL_error(L, "a task cannot join itself");
  Op op;
  wait_oplist(&op, join_try, join_push, join_list(L, t), timeout);
  op.obj = t;
  op.anchor[0] = 1;
  return wait_op(L, &op);
}

/* socket.current() -> the Task running this code, or nil outside tasks. */
static int lsock_current(lua_State *L) {
  Task *t = loop_current(L);
  if (t == NULL || t->state == T_DONE) lua_pushnil(L);
  else task_pushself(L, t);
  return 1;
}

/* socket.tasks() -> a list of the tasks that have not ended (a look
** from the REPL; the test helpers call it after every test). */
static int lsock_tasks(lua_State *L) {
  int n = 0;
  lua_newtable(L);
  task_pushlive(L, loop_get(L));
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    Task *t = (Task *)luaL_testudata(L, -1, TASK_META);
    if (t != NULL && t->state != T_DONE) lua_rawseti(L, -4, ++n);
    else lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg task_methods[] = {
  {"join", task_join},
  {"cancel", task_cancel},
  {"status", task_status},
  {NULL, NULL}
};

/* luaL_ref counts on the indices below its free list's being taken, as
** they are in the registry (LUA_RIDX_*): taken here too, or a reference
** could land on the free list's slot and overwrite it. */
void task_open(lua_State *L, Loop *loop) {
  lua_createtable(L, LUA_RIDX_LAST + 1, 0);
  for (int i = 1; i <= LUA_RIDX_LAST; i++) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, i);
  }
  loop->live = luaL_ref(L, LUA_REGISTRYINDEX);
  if (luaL_newmetatable(L, TASK_META)) {
    lua_pushcfunction(L, task_closed);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, task_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, task_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

const luaL_Reg loop_funcs[] = {
  {"spawn", lsock_spawn},
  {"run", lsock_run},
  {"current", lsock_current},
  {"tasks", lsock_tasks},
  {NULL, NULL}
};

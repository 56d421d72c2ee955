/*
** wait.c - the one retry driver (wait.h) that every call that may wait
** goes through.
**
** The driver tries the call's record (Op) and, when it would block,
** waits: inside a task the wait is handed to the scheduler (loop.c), the
** record is copied into the Task and the call yields to the driver's one
** continuation (op_k); outside a task we poll(2) that one descriptor,
** while the loop runs the tasks if there are any (task_turn).  The caller
** cannot tell the difference.  Waits without a descriptor (queues,
** events, locks, a task's end) wait in a wait list (waitlist.c) the same
** way, so deadline scopes and cancellation reach every wait from here.
*/
#include <errno.h>
#include <poll.h>

#include "base/errors.h"
#include "core/clock.h"
#include "core/interrupt.h"
#include "core/loop.h"
#include "core/wait.h"

/* Outside a task, with tasks to run, the loop turns while we wait
** (task_turn); else, or once no task is left, poll w alone (or nothing,
** w NULL).  A task that closed w meanwhile gives LSOCK_ECLOSED: w->fd is
** read again here, as its number may name another socket by now.  EINTR
** retried unless it was Ctrl-C. */
static int wait_watch(lua_State *L, Watch *w, short events, double deadline) {
  int err = task_turn(L, w, events, deadline);
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

/* ---- the retry driver ----------------------------------------------- */

void wait_opinit(Op *op, OpTry try, OpPush push, Watch *w, int dir, double timeout) {
  op->try = try;
  op->push = push;
  op->w = w;
  op->obj = NULL;
  op->data = NULL;
  op->size = op->done = 0;
  op->deadline = timeout;
  op->flags = 0;
  op->dir = (unsigned char)dir;
  op->timeout = 1;
  op->saved = 0;
  op->backoff = 0;
  op->onlist = op->pending = 0;
  op->selfanchor = 0;
  op->anchor[0] = op->anchor[1] = 0;
}

void wait_oplist(Op *op, OpTry try, OpPush push, WaitList *l, double timeout) {
  wait_opinit(op, try, push, NULL, WAIT_READ, timeout);
  op->list = l;
  op->onlist = 1;
}

/* The deadline a wait of op ends at: the call's own, made absolute at its
** first wait (a call served at once never reads the clock), or the
** innermost deadline scope's when that comes first (*cut is then set). */
static double op_deadline(lua_State *L, Op *op, int *cut) {
  if (op->timeout) {
    op->deadline = clock_deadline(op->deadline);
    op->timeout = 0;
  }
  *cut = 0;
  if (op->deadline == 0) return 0;   /* non-blocking: no wait to bound */
  return scope_deadline(L, op->deadline, cut);
}

/* How the park of t ended, as the call sees it: 0 (ready: try again),
** LSOCK_ETIMEOUT or LSOCK_ECLOSED.  (A cancelled task is not resumed
** here: task.c ends it.) */
static int op_outcome(Task *t) {
  return loop_outcome(t);
}

/* Whether op's only anchor is the userdata its Watch lives in (a socket
** call's: the socket). */
static int anchors_self(lua_State *L, const Op *op) {
  return op->w != NULL && op->anchor[1] == 0 && op->anchor[0] != 0 &&
         lua_touserdata(L, op->anchor[0]) == (void *)op->w;
}

/* The call is about to park t: take t off whatever it was parked on (a
** task the user resumed himself), then copy op into the Task (unless it is
** that copy already, waiting again), where the scheduler reads its Watch,
** and anchor the Lua values its pointers live in.  Should the park fail,
** the call goes on with op on the C stack; the copy just waits for the
** next.  A task that waits on the same socket again (a server's recv
** after recv) has it anchored already: the anchor kept it alive, so no
** other object can be at its address. */
static void op_save(lua_State *L, Task *t, Op *op) {
  loop_unpark(t);
  if (!op->saved) {
    Op *keep = task_op(t);
    int self = anchors_self(L, op);
    if (!(self && keep->selfanchor && keep->w == op->w))
      task_anchor(L, t, op->anchor[0], op->anchor[1]);
    *keep = *op;
    keep->saved = 1;
    keep->selfanchor = (unsigned char)self;
  }
}

static int op_k(lua_State *L, int status, lua_KContext ctx);

/* The parked call yields to the loop, its stack emptied, so that no script
** can reach or change its state; op_k resumes it. */
static int op_yield(lua_State *L) {
  lua_settop(L, 0);
  return lua_yieldk(L, 0, 0, op_k);
}

void wait_pushanchor(lua_State *L, const Op *op, int i) {
  if (op->saved) task_pushanchor(L, task_ofop(op), i);
  else if (op->anchor[i] != 0) lua_pushvalue(L, op->anchor[i]);
  else lua_pushnil(L);
}

/* Wait until op can be tried again in direction dir: 0, or the error that
** ends the call.  A socket call whose deadline is already past times out
** even if the socket is ready, so a call that keeps making slow progress
** still ends at its deadline; a pure delay (no Watch) just waited long
** enough, unless a scope cut it.  In a task it parks and yields (op_k
** resumes). */
static int op_wait(lua_State *L, Op *op, int dir) {
  int cut;
  double deadline = op_deadline(L, op, &cut);
  if (deadline == 0) return EAGAIN;   /* non-blocking: report, as Python does */
  if ((op->w != NULL || cut) && deadline > 0 && clock_now() >= deadline)
    return LSOCK_ETIMEOUT;
  Task *t = task_to_park(L);
  if (t == NULL) {
    int err = wait_watch(L, op->w, dir == WAIT_READ ? POLLIN : POLLOUT, deadline);
    return op->w == NULL && !cut && err == LSOCK_ETIMEOUT ? 0 : err;
  }
  op_save(L, t, op);
  int err = loop_park(t, op->w != NULL, dir, deadline);
  if (err) return err;
  return op_yield(L);
}

/* Give back what a waker handed op, whose call ends without it; the
** values on the stack stay as they are.  Returns 0, or 1 when the
** hand-off cannot be undone (the push step gave results: the call is
** done). */
static int op_giveback(lua_State *L, Op *op) {
  int top = lua_gettop(L);
  int done = op->push(L, op, LSOCK_ECANCELLED, 0) > 0;
  lua_settop(L, top);
  return done;
}

/* op's wait in its list outside a task.  Ctrl-C raises through it, after
** a hand-off that came meanwhile is given back.  One that cannot be
** given back (a put whose value was taken) ends the call as done, as a
** Python call that completed returns before KeyboardInterrupt: the
** interruption stays pending, for the next wait to raise.  Other errors
** (no memory, a script's debug hook that raised in the turn) raise as
** they came, after the give-back, whatever their text. */
static int op_waitoutside(lua_State *L, Op *op, double deadline) {
  int raised;
  interrupt_unmark(L);   /* forget one raised before this wait */
  int err = waitlist_outside(L, op->list, deadline, op->anchor[1], &raised);
  if (!raised) return err;
  int ctrlc = interrupt_raised(L);   /* else the script's error, whatever it says */
  if (err == 0 && op_giveback(L, op) && ctrlc) {
    lua_pop(L, 1);        /* the error */
    interrupt_waits(L);   /* raised at the next wait */
    return 0;
  }
  return lua_error(L);
}

/* Wait in op's list until a waker ends the wait (0: it handed op what it
** waited for), the deadline passes (a non-blocking call times out at
** once) or the task is cancelled.  Anchor 1 is the box a waker fills or
** takes.  In a task it parks and yields (op_k resumes). */
static int op_waitlist(lua_State *L, Op *op) {
  int cut;
  double deadline = op_deadline(L, op, &cut);
  if (deadline == 0 || (deadline > 0 && clock_now() >= deadline)) return LSOCK_ETIMEOUT;
  Task *t = task_to_park(L);
  if (t == NULL) return op_waitoutside(L, op, deadline);
  op->pending = 1;
  op_save(L, t, op);
  waitlist_park(t, op->list, deadline);
  return op_yield(L);
}

int wait_skipread(lua_State *L, const Op *op) {
  return op->w->hint == (HINT_TCP | HINT_DRAINED) && op->deadline != 0 &&
         task_to_park(L) != NULL;
}

int wait_backoff(const Op *op, int err) {
  return op->deadline == 0 ? err : OP_BACKOFF;   /* 0: non-blocking, as timeout or deadline */
}

/* How a backoff ended (the pure delay's timer is its normal end): 0 to try
** again, LSOCK_ECLOSED when op's socket was closed meanwhile. */
static int backoff_end(const Op *op, int err) {
  if (err != LSOCK_ETIMEOUT && err != 0) return err;
  return op->w != NULL && op->w->fd < 0 ? LSOCK_ECLOSED : 0;
}

/* Wait OP_BACKOFF_SECONDS, or less up to op's deadline (its own or its
** scope's), before op is tried again: a server out of descriptors keeps
** serving the clients it has (as asyncio pauses accepting) instead of
** failing at once and spinning.  0 or the error that ends the call.  In a
** task it parks on a timer alone and yields (op_k resumes). */
static int op_backoff(lua_State *L, Op *op) {
  int cut;   /* a scope's deadline ends the backoff as the call's own does */
  double deadline = op_deadline(L, op, &cut), now = clock_now();
  double until = now + OP_BACKOFF_SECONDS;
  if (deadline > 0 && now >= deadline) return LSOCK_ETIMEOUT;
  if (deadline > 0 && deadline < until) until = deadline;
  Task *t = task_to_park(L);
  if (t == NULL) return backoff_end(op, wait_watch(L, NULL, 0, until));
  op->backoff = 1;
  op_save(L, t, op);
  loop_park(t, 0, WAIT_READ, until);   /* cannot fail without a watch */
  return op_yield(L);
}

int wait_again(int err) {
  return err == EINTR;
}

/* Try op until it is done or fails, waiting as its try asks, then push:
** returns the number of results. */
int wait_op(lua_State *L, Op *op) {
  for (;;) {
    int top = lua_gettop(L);
    int r = op->try(L, op);
    if (r == 0) return op->push(L, op, 0, lua_gettop(L) - top);
    if (wait_again(r)) interrupt_check(L);   /* Ctrl-C raises; another signal: again */
    if (wait_again(r) || r == OP_AGAIN) continue;
    if (r == OP_WANTLIST) return op->push(L, op, op_waitlist(L, op), 0);
    if (r == EAGAIN) r = op->dir == WAIT_READ ? OP_WANTREAD : OP_WANTWRITE;
    if (r == OP_WANTREAD || r == OP_WANTWRITE)
      r = op_wait(L, op, r == OP_WANTREAD ? WAIT_READ : WAIT_WRITE);
    else if (r == OP_BACKOFF)
      r = op_backoff(L, op);
    if (r != 0) return op->push(L, op, r, 0);
  }
}

/* The driver's one continuation: the task's record (task_op) goes on from
** the wait that ended, on an empty stack (a script that resumed the task
** itself may have passed values).  A script's resume of a task still
** waiting for a helper thread (which owns the request) or on a wait list
** (where a hand-off may yet arrive) only parks it again; a socket wait
** just tries again.  Its anchors stay until the task's next wait
** replaces them (or the task is collected): letting them go here would
** cost as much again on every wait. */
static int op_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  Task *t = loop_current(L);
  Op *op = task_op(t);
  if ((op->onlist || op->try == NULL) && loop_parked(t))   /* a socket wait skips the call */
    return op_yield(L);   /* the script resumed it, not the loop: nothing ended yet */
  int err = op_outcome(t);
  op->pending = 0;   /* the call runs on: it sees what was handed */
  if (op->backoff) {
    op->backoff = 0;
    err = backoff_end(op, err);
  }
  if (lua_gettop(L) != 0) lua_settop(L, 0);   /* the loop resumes with none */
  if (err == 0 && op->try != NULL && !op->onlist) return wait_op(L, op);
  return op->push(L, op, err, 0);   /* an error, a hand-off, or a helper thread's job is done */
}

int wait_thread(lua_State *L, Op *op, void (*work)(void *), int req) {
  int cut;   /* a job has no deadline of its own, but a scope ends its wait */
  double deadline = scope_deadline(L, -1, &cut);
  void *arg = lua_touserdata(L, req);
  op->obj = arg;
  if (cut && clock_now() >= deadline) return op->push(L, op, LSOCK_ETIMEOUT, 0);
  Task *t = task_to_park(L);
  if (t != NULL) {
    op_save(L, t, op);
    if (loop_parkthread(L, t, work, req, deadline) == 0) return op_yield(L);
  }
  if (t == NULL) {   /* outside a task: the loop turns while it waits */
    int err = task_waitjob(L, work, req, deadline);
    if (err != EAGAIN) return op->push(L, op, err, 0);
  }
  work(arg);   /* no helper thread, or the loop cannot turn meanwhile: inline */
  return op->push(L, op, 0, 0);
}

void wait_handback(lua_State *L, Op *op) {
  if (!op->pending) return;
  op->pending = 0;
  op_giveback(L, op);
}

int wait_pushresults(lua_State *L, Op *op, int err, int nres) {
  (void)op;
  return err ? err_push(L, err) : nres;
}

/*
** core/loop.h - the scheduler as the layers above see it: the Watch a
** descriptor is waited on through, parking and waking tasks (loop.c), the
** tasks and outside waits that turn the loop (task.c), wait lists
** (waitlist.c), deadline scopes (scope.c), close listeners.  The records
** behind it are in loop_internal.h, for the core's own files; the
** layers and the life of a wait: docs/architecture.md.
*/
#ifndef LSOCK_LOOP_H
#define LSOCK_LOOP_H

#include "lua.h"
#include "lauxlib.h"

typedef struct Op Op;   /* the driver's record (core/wait.h), kept in a Task */

/* Directions a task or a poll can wait for. */
enum { WAIT_READ = 0, WAIT_WRITE = 1 };

typedef struct Loop Loop;

/* The outcome of a wait that a cancel ended: the task ends when resumed
** (apart from base/errors.h's LSOCK_E* codes: it never reaches a script). */
#define LSOCK_ECANCELLED (-1003)

typedef struct Task Task;

/*
** A descriptor the loop can watch.  It is registered with the poller at
** most once (edge-triggered, both directions) and remembers which task
** waits on each direction.  loop is NULL until first registered; after a
** fork the child's new poller knows only the watches whose gen is the
** Loop's (gen sits in padding: a Watch stays 32 bytes).
*/
typedef struct Watch {
  int fd;               /* -1 once closed */
  unsigned char woken;  /* loop_wake was called: ends an outside wait turning the loop */
  unsigned char nofd;   /* a wait list's stand-in, never a descriptor */
  unsigned char hint;   /* the readiness hint: HINT_* bits (core/wait.h) */
  unsigned char gen;    /* the Loop's gen when registered: another is the poller of a parent */
  Loop *loop;           /* poller it is registered with, or NULL */
  Task *waiter[2];      /* task waiting to read / to write, or NULL */
} Watch;
_Static_assert(sizeof(Watch) <= 32, "one Watch per connection: keep it in 32 bytes");

/* Watch.hint: HINT_TCP, a short read proves the socket drained (a TCP
** stream that has shown no urgent data nor hang-up, which the loop clears
** for good); HINT_DRAINED, its last read came back short and no event
** for it came since (the loop clears it on each one). */
enum { HINT_TCP = 1, HINT_DRAINED = 2 };

/*
** A FIFO of waiting calls (waitlist.c), for what has no descriptor:
** queues, events, locks, the end of a task.  A node is linked around the
** list's sentinel, so that a waiter leaves it in O(1) when its wait times
** out or is cancelled; next is NULL when a node is on no list.  A task's
** node lives in its Task; the one outside wait (code outside tasks) keeps
** its node on the C stack while it turns the loop.
*/
typedef struct WaitNode { struct WaitNode *next, *prev; } WaitNode;
typedef struct WaitList {
  WaitNode head;        /* sentinel */
  Loop *loop;
} WaitList;

/* ---- scope.c: deadline scopes (socket.timeout) ----------------------- */
/* The deadline a wait of L's thread really ends at: the earlier of
** deadline (< 0: none) and that of the innermost socket.timeout scope L
** runs in; *cut tells that the scope's is the earlier one (a wait that
** ends there times out, even a pure delay). */
double scope_deadline(lua_State *L, double deadline, int *cut);
/* A task ended (cancelled or closed inside fn, it never left its
** scopes): shut the scopes of its thread, at index thread, so that the
** loop's count of open ones drops now rather than when it is collected. */
void scope_endthread(lua_State *L, Loop *loop, int thread);
extern const luaL_Reg scope_funcs[];      /* timeout */

/* ---- waitlist.c: waiting on a WaitList -------------------------------- */
/* Make l empty; raises when the loop is closed. */
void waitlist_init(lua_State *L, WaitList *l);
int waitlist_empty(const WaitList *l);
/* The driver's wait in l (wait.c, OP_WANTLIST): park t on the timer
** alone until deadline (< 0: none) with its node at the end of l. */
void waitlist_park(Task *t, WaitList *l, double deadline);
/*
** The same outside a task: turn the loop until a waker ends the wait
** (returns 0, or the outcome it chose: LSOCK_ECLOSED) or until deadline
** (LSOCK_ETIMEOUT); with no task left to wake it, it can only time out.
** box (a stack index, 0: none) is the waiter's box: wakers may replace
** its value or take it meanwhile.  When the turn raised (Ctrl-C), *raised
** is set, the error is on top for the caller to raise again, and the
** result is 0 if a waker had handed something over meanwhile.  Raises
** where nothing could wake it: in a task that cannot yield.
*/
int waitlist_outside(lua_State *L, WaitList *l, double deadline, int box, int *raised);
/* Wake the first waiter with outcome; with give, pop the value on top of
** L into its box.  Returns 0 when nobody waited (nothing popped). */
int waitlist_wake(lua_State *L, WaitList *l, int outcome, int give);
/* Push the first waiter's box (leaving nil there) and wake it with 0;
** returns 0 (nothing pushed) when nobody waited. */
int waitlist_take(lua_State *L, WaitList *l);
void waitlist_wakeall(WaitList *l, int outcome);   /* wake every waiter */
/* The object holding l is collected: wake its waiters with LSOCK_ECLOSED
** (none unless debug.setlocal took it off their stacks). */
void waitlist_drop(WaitList *l);
void waitnode_unlink(WaitNode *n);   /* off its list, if on one */

/* ---- loop.c, task.c: the scheduler the driver yields to ------------ */
Task *loop_current(lua_State *L);     /* the task running on L, or NULL */
void loop_unpark(Task *t);   /* off its watch, timer and wait list */
/* Park t on the Watch of its Op (task_op(t)->w, when onwatch; else on
** the timer only) in direction dir until ready, deadline (< 0: none) or
** close; the caller then yields.  t is parked on nothing before (a task
** the user resumed himself while it was parked: loop_unpark it first).  Returns 0, or an errno when the Watch
** cannot be watched (the caller reports it); raises when another task
** already waits on it in that direction. */
int loop_park(Task *t, int onwatch, int dir, double deadline);
/* Park t until work(arg) has run on a helper thread, or until deadline
** (< 0: none; a deadline scope's): the wait then times out and the job's
** result is dropped when it comes.  arg is the request (JobHead first)
** at L's stack index req: the job keeps it, and t, alive until it ended,
** so a task that gave up waits for its next job on a thread too.  0, or
** an errno when no thread could be started (the caller then runs work
** inline). */
int loop_parkthread(lua_State *L, Task *t, void (*work)(void *), int req, double deadline);
/* The same outside a task: run work on a helper thread and turn the loop
** (task_turn) until it is done (0) or deadline (LSOCK_ETIMEOUT); Ctrl-C
** raises "interrupted!".  EAGAIN when no thread could take it, or the
** loop cannot be turned here (it runs): the caller runs work inline. */
int task_waitjob(lua_State *L, void (*work)(void *), int req, double deadline);
int loop_outcome(Task *t);            /* why the last park ended */
/* Whether t still waits for the loop (parked, or for a helper thread's
** job): so it is when the script, not the loop, resumed it. */
int loop_parked(Task *t);
/* The record of the wait t is in: storage the Task owns (wait.c). */
Op *task_op(Task *t);
/* Anchor the values at L's stack indices a0, a1 (0: none) in t until
** the next call, and push anchor i (0 or 1) back. */
void task_anchor(lua_State *L, Task *t, int a0, int a1);
void task_pushanchor(lua_State *L, Task *t, int i);
void task_setanchor(lua_State *L, Task *t, int i);   /* pops the new value */
Task *task_ofop(const Op *op);   /* the Task whose record op is */
/* An outside wait (not in a task) for w (NULL: none) to be ready for poll
** events, or for deadline: when tasks exist and neither run nor another
** turn is active, run them meanwhile (the loop "turns").  Returns 0 (ready,
** or loop_wake(w) was called), LSOCK_ETIMEOUT, LSOCK_ECLOSED (a task
** closed w), or EAGAIN when it did not wait (no task, or none left): the
** caller then polls alone.  Ctrl-C raises "interrupted!". */
int task_turn(lua_State *L, Watch *w, short events, double deadline);
/* Make the tasks parked on w (both directions), and an outside wait on
** w turning the loop, ready with outcome 0, as if w were ready: socket
** operations retry their syscall (and wait again), a stream's
** try sees that its stream was closed (stream close). */
void loop_wake(Watch *w);
/* Before w->fd is closed (or detached): tell the close listeners of L's
** loop, remove w from the poller; its waiters are woken with
** LSOCK_ECLOSED.  From __gc the only possible waiter is a task whose
** coroutine the user closed (it then just ends). */
void loop_unwatch(lua_State *L, Watch *w);
/* The idempotent close of a Watch's descriptor (sockets, select's epoll
** set): loop_unwatch, close, fd = -1.  Never raises. */
void loop_closewatch(lua_State *L, Watch *w);
/*
** A close listener, for a waiter that lists descriptors without parking
** on them (select waits on an epoll set of its own, which a closed fd
** silently leaves): while it listens, loop_unwatch calls closing(self, w)
** before any w closes, and it wakes itself if w is one of its own.
*/
typedef struct Listener {
  void (*closing)(struct Listener *self, const Watch *w);
  struct Listener *prev, *next;   /* in the Loop's ring; NULL when not listening */
} Listener;
void loop_listen(lua_State *L, Listener *l);   /* l->closing set by the caller */
void loop_unlisten(Listener *l);               /* idempotent */

extern const luaL_Reg loop_funcs[];       /* task.c: spawn, run */
/* task.c: socket.run([fn, ...]), which workers.c's socket.run calls
** when there are no workers to fork. */
int lsock_run(lua_State *L);

/* loop.c, around fork(2): loop_prefork lets the helper threads' running
** jobs end and stops the threads (none may hold a lock of the C library
** when the process forks: a lookup does); the parent then calls
** loop_postfork, which starts threads for the jobs still queued (after
** as many forks as it likes: workers.c's supervisor forks every worker
** and restart in between, and makes no lookup meanwhile).  In the
** child, loop_forked: the poller and the eventfd were the parent's
** (shared with it), so give the loop its own, with every descriptor the
** parent watched registered again; the jobs queued or ended go on there
** as in the parent.  Returns 0 or an errno; call it before anything
** waits. */
void loop_prefork(lua_State *L);
void loop_postfork(lua_State *L);
int loop_forked(lua_State *L);

/* loop.c: create L's Loop (once) and mark L's main thread "no task" in
** its LUA_EXTRASPACE, which Lua leaves uninitialised and every new thread
** copies: luasock_openlibs and luaopen_socket call it, before coroutines
** that could inherit garbage exist. */
void loop_open(lua_State *L);

#endif

/*
** loop_internal.h - what loop.c and task.c share, and no other file: the
** Task and Loop records (with the poller inside the Loop) and the
** scheduler helpers task.c calls.  loop.c parks tasks and marks them
** ready (poller, run queue, timer heap, helper threads, the Loop object);
** task.c makes, resumes and ends them and drives the loop (socket.run,
** outside waits that turn it).  The rest of luasock sees only the loop_*
** interface in core/loop.h.
*/
#ifndef LOOP_INTERNAL_H
#define LOOP_INTERNAL_H

#include <signal.h>
#include <sys/epoll.h>

#include "base/errors.h"
#include "core/pool.h"
#include "core/loop.h"
#include "core/wait.h"

#define TASK_META  "luasock.task"
#define POLL_BATCH 256   /* events taken per epoll_wait */

/* What a task is doing; READY tasks are in the run queue exactly once. */
enum { T_READY, T_RUNNING, T_PARKED, T_THREAD, T_DONE };

/* How a task in state T_DONE ended (Task.end). */
enum { END_OK, END_FAILED, END_CANCELLED };

/* Ordered by size and with one-bit flags, so that it stays small: one per
** connection in a server.  Its user value 1 is the coroutine; once it
** ended, co is NULL and user value 1 holds what join returns (a table of
** its results, or its error).  op is the record of the wait it is in
** (wait.c copies it there when the call yields; user value 2 anchors
** what it points into: task_anchor).  Until it is let go, the Loop's
** table of live tasks holds it at index ref. */
struct Task {
  lua_State *co;            /* the coroutine (our user value 1) */
  Loop *loop;
  WaitNode node;            /* its place in a wait list (waitlist.c), if on one */
  int heapidx;              /* index in the timer heap (its deadline), -1 if not there */
  int ref;                  /* its index in the table of live tasks (Loop.live) */
  union {
    int nargs;              /* before its first resume: arguments for it */
    int outcome;            /* after a park: 0, LSOCK_ETIMEOUT or LSOCK_ECLOSED */
  };
  unsigned char dir, state; /* dir: the direction it is parked in on op.w */
  unsigned char onwatch : 1;    /* parked on op.w (a Watch) in direction dir */
  unsigned char inq : 1;        /* in the run queue (at most once) */
  unsigned char cancelled : 1;  /* cancel asked: its current or next wait ends it */
  unsigned char end : 2;        /* T_DONE: how it ended (END_*) */
  unsigned char joined : 1;     /* someone waits for its end (task.c's join lists) */
  unsigned char pair : 1;       /* user value 2 is a table of both anchors */
  Op op;
};
/* With its two user values, 192 bytes of Lua heap per connection. */
_Static_assert(sizeof(Task) <= 120, "one Task per connection: keep it in 120 bytes");

/* An entry of the timer heap: the deadline there, not in the Task, so that
** a task without one (a server's idle connection) does not pay for it. */
typedef struct Timer {
  double deadline;          /* absolute */
  Task *t;
} Timer;

typedef struct Poller {
  int fd;
  struct epoll_event ev[POLL_BATCH];
} Poller;

struct Loop {
  Task outside;             /* what a thread outside any task points to (its
                               extra space): no coroutine, this loop */
  lua_State *volatile resumed;   /* the task coroutine being resumed, or NULL */
  volatile int wakefd;      /* eventfd that ends the poller's wait, -1 once closed */
  volatile sig_atomic_t interrupted;   /* luasock_interrupt: the next check raises */
  int stopped;              /* Ctrl-C raised outside the tasks (interrupt_raised) */
  Listener listeners;       /* ring head of the close listeners (loop_listen) */
  Poller poller;
  Pool *pool;               /* helper threads, or NULL if it failed */
  Watch poolw;              /* the pool's eventfd */
  const void *outjob;       /* the request of the job code outside tasks waits for */
  Watch outjobw;            /* what that wait turns the loop on: its end wakes it */
  int closed, running;      /* running: run or a turn (task_turn) is active */
  unsigned char gen;        /* poller generation: one more at each loop_forked */
  int failed;               /* a task failed: its error is at &error_key (task.c) */
  int ntasks;               /* tasks spawned and not ended */
  int nheld;                /* ended tasks the run queue still names */
  int nscopes;              /* deadline scopes open, in any thread (scope.c) */
  int live;                 /* registry index of the table of live tasks (task.c) */
  WaitNode *outwaiter;      /* the wait-list node of the outside wait, or NULL */
  Task **runq;              /* ring of ready tasks, capacity >= ntasks */
  unsigned qhead, qcount, qcap;
  Timer *heap;              /* timer heap on deadline, capacity >= ntasks */
  int nheap, heapcap;
};

/* ---- loop.c: the scheduler core, for task.c ------------------------ */
/* Make the poller and the helper threads' eventfd unless they exist: at
** the first spawn or the first wait that needs them, so that a script
** without tasks or waits opens no descriptor.  0 or an errno. */
int loop_start(Loop *loop);
/* Make room for one more task in the run queue and the heap (raises). */
void loop_reserve(lua_State *L, Loop *loop);
void loop_runqpush(Loop *loop, Task *t);   /* queue t (at most once) */
Task *loop_runqpop(Loop *loop);            /* the first ready task */
void loop_ready(Task *t, int outcome);     /* unpark t and queue it */
void loop_setcurrent(lua_State *co, Task *t);   /* co runs t (NULL: none) */
void loop_expire(Loop *loop);              /* tasks whose deadline passed */
/* Wait up to ms (-1: forever) for events and mark their tasks ready. */
void loop_pollevents(lua_State *L, Loop *loop, int ms);
/* The pool's eventfd was readable: take the jobs that ended and wake
** whoever still waits for them (loop_pollevents does it for the poller). */
void loop_collectjobs(lua_State *L, Loop *loop);
/* Start work(request at L's index req) on a helper thread for code
** outside tasks, and name it in loop->outjob until it ended; EAGAIN when
** it must run inline (no thread; the loop runs, so it cannot turn). */
int loop_startoutside(lua_State *L, Loop *loop, void (*work)(void *), int req);
/* Make the loop's epoll_wait return (signal-safe), so that a Ctrl-C that
** came just before the wait is not missed. */
void loop_wakeup(Loop *loop);
Loop *loop_get(lua_State *L);   /* the Loop of L; raises when closed */
/* The Loop of L, from its extra space (loop_open sets the main thread's,
** which new threads copy), else from the registry; NULL when L has none. */
Loop *loop_of(lua_State *L);
/* The same from the extra space alone: safe in a signal handler. */
Loop *loop_peek(lua_State *L);
/* The Loop of L when an outside wait should turn it, else NULL. */
Loop *loop_idle(lua_State *L);


/* ---- task.c: tasks, for loop.c -------------------------------------- */
int task_closed(lua_State *L);   /* the Task's __close */
/* The Task metatable and loop's table of live tasks. */
void task_open(lua_State *L, Loop *loop);
/* Push loop's table of live tasks: the Tasks not let go, at their ref
** (and integers: luaL_ref's free list). */
void task_pushlive(lua_State *L, Loop *loop);

#endif

/*
** core/wait.h - the wait layer: the one retry driver that every call
** that may wait goes through (wait.c); the Watch it waits on is the
** loop's (core/loop.h).  docs/architecture.md follows one recv through it.
**
** A call that may wait fills an operation record (Op) on the C stack: a
** `try` step that makes one attempt (a syscall, later a TLS call), a
** `push` step that pushes the results, the Watch, the deadline and the
** call's own state (flags, sizes, progress, pointers to the objects it
** works on).  wait_op runs it: try; EINTR: again (Ctrl-C raises); would
** block: wait until the deadline, in the direction the try asked for;
** then try again; at the end push.  Inside a task the wait parks the task
** and yields: the record is copied into the Task (storage the task owns,
** nothing allocated) with the Lua values it points into anchored there,
** and the driver's one continuation resumes from that copy.  No call
** state lives in Lua stack slots across a wait, so nothing a script can
** reach with debug.setlocal changes it.  Outside a task the driver polls
** that one descriptor while the loop runs the tasks (task_turn).
**
** Left out: waiting on two descriptors at once (select waits on an epoll
** set of its own).
*/
#ifndef LSOCK_WAIT_H
#define LSOCK_WAIT_H

#include <stddef.h>

#include "lua.h"

#include "core/loop.h"




/* ---- the operation record ------------------------------------------ */

typedef struct Op Op;

/* What a try step says, besides 0 (done: its results are pushed) and an
** error (> 0 errno, < 0 LSOCK_E*): wait until the Watch is readable or
** writable, then try again; or try again at once (a connection aborted
** before accept took it); or try again after a short delay (OP_BACKOFF:
** descriptors or memory ran out, which only time mends; a non-blocking
** call returns the errno instead, see wait_backoff).  EAGAIN means "wait
** in op->dir"; EINTR is tried again at once too, unless it was Ctrl-C. */
enum { OP_WANTREAD = -2000, OP_WANTWRITE = -2001, OP_AGAIN = -2002, OP_BACKOFF = -2003,
       OP_WANTLIST = -2004 };
/* OP_WANTLIST: wait in op->list (a queue, an event, a lock, a task's end)
** until a waker ends the wait; it hands the call what it waited for before
** the call runs again (a value in the box, anchor 1; a unit of a lock), so
** the call ends then, without another try: its push step gets err 0 and
** no results.  Should the task end before it runs (coroutine.close), its
** push step gets LSOCK_ECANCELLED instead, on whatever thread ends it, and
** gives back what was handed (see wait_handback). */

/* Whether the driver tries a call again at once after the syscall error
** err (a signal interrupted the syscall; Ctrl-C raises instead).  A try
** step returns such an error as it is; a layer between a try step and its
** syscall (the TLS BIO) asks here, so as to pass it up, not fail. */
int wait_again(int err);

/* How long a call backs off before it tries again (OP_BACKOFF). */
#define OP_BACKOFF_SECONDS 0.1

/* One attempt; pushes the call's results only when it returns 0. */
typedef int (*OpTry)(lua_State *L, Op *op);
/* The end of the call: err is 0 with the nres values the last try pushed
** on top, or the error that ended it.  Returns the number of results
** (wait_pushresults: those values, or nil, message, errno). */
typedef int (*OpPush)(lua_State *L, Op *op, int err, int nres);

/* Kept small: a copy lives in every Task (one per connection). */
struct Op {
  OpTry try;
  OpPush push;
  union {
    Watch *w;           /* waited on; NULL: a pure delay */
    WaitList *list;     /* onlist: the wait list it waits in */
  };
  void *obj;            /* the call's object: socket, stream, state block */
  const void *data;     /* bytes or codes the call works through */
  size_t size, done;    /* what was asked and the progress so far */
  double deadline;      /* absolute (< 0 none, 0 non-blocking), or a timeout */
  int flags;            /* the call's own: MSG_* flags, modes */
  unsigned char dir : 1;      /* the direction EAGAIN waits in */
  unsigned char timeout : 1;  /* deadline holds a timeout until the first wait */
  unsigned char saved : 1;    /* this is the Task's copy: the call has yielded */
  unsigned char backoff : 1;  /* its wait is a backoff: the timer means "try again" */
  unsigned char onlist : 1;   /* waits in list (OP_WANTLIST), on no Watch */
  unsigned char pending : 1;  /* parked in list: a waker may hand it something */
  unsigned char selfanchor : 1;  /* the Task's copy: its anchors are the userdata
                                    w points to and nothing (op_save) */
  unsigned char anchor[2];    /* stack indices of the Lua values the pointers
                                 live in (0: none), anchored when it yields */
};

/* An Op for a call on w in direction dir, with a timeout in seconds (< 0
** none, 0 non-blocking) that becomes a deadline only if the call waits:
** calls served at once never read the clock. */
void wait_opinit(Op *op, OpTry try, OpPush push, Watch *w, int dir, double timeout);
/* The same for a call that waits in list l (its try returns OP_WANTLIST). */
void wait_oplist(Op *op, OpTry try, OpPush push, WaitList *l, double timeout);

/*
** The retry driver.  Runs op (on the C stack) to its end and returns its
** push's result count: try; EINTR: again (Ctrl-C raises "interrupted!");
** OP_WANT*: wait until ready or the deadline (a deadline already past
** times out, even if the socket is ready; a non-blocking one gives
** EAGAIN); LSOCK_ECLOSED when the Watch was closed meanwhile.  In a task
** it may yield: the caller must return its result at once ("return
** wait_op(L, &op);").  Raises like the steps do.
*/
int wait_op(lua_State *L, Op *op);
/* What a try step returns for err, a lack of descriptors or memory
** (EMFILE, ENFILE, ENOBUFS, ENOMEM): OP_BACKOFF, or err itself for a
** non-blocking call. */
int wait_backoff(const Op *op, int err);
/*
** The readiness hint saves the read that would only say EAGAIN: a read on
** a TCP stream that comes back short (fewer bytes than asked, more than
** none, no flags) found the socket drained, and every byte that comes
** later brings an edge-triggered event, which clears the hint.  So a try
** step that reads asks wait_skipread first and, when it says so, returns
** EAGAIN without the syscall: the task parks and the event wakes it.
** Only where the kernel guarantees it: a short read stops before TCP
** urgent data and at an SCM_RIGHTS boundary on AF_UNIX with bytes still
** queued, so sockets other than TCP never get HINT_TCP and the loop
** clears it for good on urgent data or a hang-up (data and the end of
** stream in one event: no other follows).  Outside a task, or
** non-blocking, the events are not read meanwhile: always try there.
*/
int wait_skipread(lua_State *L, const Op *op);
/* A read on w returned got of the asked bytes: mark w drained when that
** is short on a TCP stream. */
static inline void wait_readgot(Watch *w, size_t got, size_t asked) {
  if (got > 0 && got < asked && (w->hint & HINT_TCP)) w->hint |= HINT_DRAINED;
}
/* The usual push step: the try's results, or err_push(err). */
int wait_pushresults(lua_State *L, Op *op, int err, int nres);
/* Push the Lua value anchor i (0 or 1) of op: from its stack index before
** the call yielded, from the Task after (the stack is emptied at a yield,
** so that debug.getlocal finds nothing of the call there), on any thread. */
void wait_pushanchor(lua_State *L, const Op *op, int i);
/* A task woken from a wait list ends before its call could run on
** (coroutine.close): the call's push step, with LSOCK_ECANCELLED, gives
** back what its waker handed it, so that nothing handed over is lost.
** Called by task.c on the thread that ends the task; no-op unless op was
** such a wait. */
void wait_handback(lua_State *L, Op *op);

/* ---- waits that are not a socket call ------------------------------ */
/* Outside a task: wait until fd (< 0: none) is ready for the poll(2)
** events, or deadline; the loop turns meanwhile if tasks exist
** (task_turn).  Returns 0, LSOCK_ETIMEOUT or an errno; Ctrl-C raises
** "interrupted!".  The REPL waits for stdin here. */
int wait_fdready(lua_State *L, int fd, short events, double deadline);
/* Raise "interrupted!" if Ctrl-C was pressed (call it on EINTR). */
void wait_checkinterrupt(lua_State *L);

/* ---- helper threads ------------------------------------------------ */
/* The head of a request a helper thread works in (a userdata): busy from
** the job's start until the loop took its end, both on the loop's thread.
** Its finalizer frees the results unless busy (lua_close may finalize it
** while the job runs: the loop calls drop once the threads are joined). */
typedef struct JobHead {
  void (*drop)(void *req);   /* free what the job left in req (NULL: nothing) */
  int busy;
} JobHead;
/*
** Run work(req) off the loop thread (name resolution), req being the
** request (a userdata starting with a JobHead) at L's stack index req:
** on a helper thread, while the task is parked or, outside a task, while
** the loop turns; inline where neither can be (no thread, or a wait that
** cannot yield inside a task).  Then op->push(L, op, 0 or the wait's
** error, 0) ends the call, with op->obj the request.  A deadline scope
** ends the wait (LSOCK_ETIMEOUT), as a cancel or Ctrl-C does; the job
** goes on and keeps the request alive until it ends, and its result is
** dropped.  work touches no Lua state.  Returns like wait_op, and may
** yield.
*/
int wait_thread(lua_State *L, Op *op, void (*work)(void *), int req);
#endif

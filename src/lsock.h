/*
** lsock.h - the internal header every C file of luasock shares (addr.h,
** stream.h and loop_internal.h each serve one pair of files).
**
** The socket object (LSocket), the error convention shared by every C
** file, the retry driver's Ctrl-C and thread waits (wait.c; the record and
** the driver are in wait.h) and the scheduler interface (loop.c, task.c)
** that the driver yields to.  Nothing here is public:
** embedders see only luasock.h.
**
** Error convention in C: an operation reports one int, 0 for success, a
** positive errno, or one of the negative LSOCK_E* codes below.  Only
** errors.c turns that int into Lua values (nil, message, errno).
*/
#ifndef LSOCK_H
#define LSOCK_H

#include <signal.h>
#include <sys/socket.h>

#include "lua.h"
#include "lauxlib.h"

#include "luasock.h"
#include "wait.h"

/* Metatable names (luaL_newmetatable stores them in __name). */
#define LSOCK_SOCKET  "luasock.socket"
#define LSOCK_STREAM  "luasock.stream"
#define LSOCK_ADDRESS "luasock.address"

/* Our own error codes: negative and far from the EAI_* codes. */
#define LSOCK_ETIMEOUT (-1000)  /* a deadline passed: nil, "timeout", ETIMEDOUT */
#define LSOCK_ECLOSED  (-1001)  /* closed by this side while waiting: nil, "closed", EBADF */
/* A TLS failure in a stream call: the TLS layer left its message and code
** (a string) in the registry at LSOCK_TLSERR_KEY for err_push to use. */
#define LSOCK_ETLS     (-1100)
#define LSOCK_TLSERR_KEY "luasock.ssl.lasterror"
#define LSOCK_ETOOLONG (-1002)  /* a line past the stream's limit: nil, "line too long", EMSGSIZE */

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

/* The userdata behind every socket object. */
typedef struct LSocket {
  Watch w;              /* w.fd == -1 means closed */
  int family, type, proto;
  unsigned char tls;    /* a TLS socket: an LTLS (tls.h) begins with this */
  double timeout;       /* < 0 blocking, 0 non-blocking, > 0 seconds */
  const void *meta;     /* its metatable, for sock_test */
} LSocket;

/* ---- socket.c: the object ---------------------------------------- */
/* The socket at idx, or NULL; a TLS socket is one too (a larger block
** that begins with an LSocket). */
LSocket *sock_test(lua_State *L, int idx);
LSocket *sock_check(lua_State *L, int idx);      /* any socket, maybe closed */
LSocket *sock_checkopen(lua_State *L, int idx);  /* raises on a closed one */
/* Push a new socket in the closed state with the default timeout; the
** caller then stores the descriptor in ->w.fd (so a memory error can never
** orphan a descriptor). */
LSocket *sock_push(lua_State *L, int family, int type, int proto);
/* The integer argument at idx, which must lie in min..max: raises "number
** expected" or "integer out of range" against idx.  flags, sizes, levels,
** options: never cast a lua_Integer to int without it. */
lua_Integer sock_checkint(lua_State *L, int idx, lua_Integer min, lua_Integer max);
lua_Integer sock_optint(lua_State *L, int idx, lua_Integer def, lua_Integer min,
                        lua_Integer max);             /* nil or none: def */
/* Copy the fields of the table at from into the table on top. */
void sock_copyfields(lua_State *L, int from);
/* Push a new table with weak keys ("k"), values ("v") or both ("kv"). */
void sock_pushweak(lua_State *L, const char *mode);
/* An optional flags argument (MSG_*; default 0): any C int. */
int sock_optflags(lua_State *L, int idx);
/* An Op (wait.h) for a call on s, the socket at stack index 1 (anchored
** with it), in direction dir, with the MSG_* flags in op->flags:
** MSG_DONTWAIT makes it non-blocking (EAGAIN at once, as in C), else the
** socket's timeout bounds it. */
void sock_opinit(Op *op, LSocket *s, int dir, int flags, OpTry try, OpPush push);
/* The socket of such an Op: its Watch is the socket's first member. */
static inline LSocket *sock_ofop(const Op *op) {
  return (LSocket *)op->w;
}
/* A timeout (or delay) argument in seconds: a number >= 0 (NaN raises
** "<what> must be non-negative"); nil or none gives -1 (no deadline) when
** nilok, else raises "number expected". */
double sock_checktimeout(lua_State *L, int idx, int nilok, const char *what);

/* ---- errors.c: C errors into Lua values ---------------------------- */
int err_push(lua_State *L, int err);        /* pushes nil, message, code; returns 3 */
/* Resolver error: nil, gai_strerror, code; for EAI_SYSTEM the errno saved
** right after the resolver returned. */
int err_pushgai(lua_State *L, int code, int saved_errno);
int err_pushresult(lua_State *L, int err);  /* true, or (err != 0) err_push */
const char *err_message(int err);           /* text for an err int */
void err_pusherrnotable(lua_State *L);      /* pushes the socket.errno table */

/* ---- clock.c: the monotonic clock, deadlines ----------------------- */
double clock_now(void);                     /* monotonic seconds */
/* Absolute deadline for a timeout: -1 for none (t < 0), 0 for
** non-blocking (t == 0), else now + t. */
double clock_deadline(double timeout);
/* Milliseconds from now until deadline, rounded up, for poll/epoll:
** -1 for no deadline. */
int clock_ms(double deadline);

/* ---- wait.c: the retry driver (wait.h), Ctrl-C ---------------------- */
/*
** Run work(arg) off the loop thread (name resolution): in a task on a
** helper thread while the task is parked, else inline; then op->push(L,
** op, 0 or the wait's error, 0) ends the call.  op has no try step; arg
** lives in a block op anchors, which the Task keeps alive until the job is
** done (even if the task is closed meanwhile).  work touches no Lua
** state.  Returns like wait_op, and may yield.
*/
int wait_thread(lua_State *L, Op *op, void (*work)(void *), void *arg);
/*
** The older wait point, for the calls not on the driver yet (signals.c,
** sync.c's wait lists, join): wait until w is ready in direction dir, or
** until deadline (bounded by a deadline scope).  Outside a task it polls
** and returns 0, LSOCK_ETIMEOUT or EAGAIN for a non-blocking deadline (0).
** Inside a task it parks and yields: the continuation k runs when the wait
** ends and learns the outcome from wait_resumed; such callers keep their
** state on their own stack and check it again (wait_changed raises
** "internal state of a waiting call was changed").
*/
int wait_fd(lua_State *L, Watch *w, int dir, double deadline,
            lua_KContext ctx, lua_KFunction k);
/* Same for a pure delay: returns 0 when deadline passes. */
int wait_until(lua_State *L, double deadline, lua_KContext ctx, lua_KFunction k);
int wait_resumed(lua_State *L, int status);
int wait_changed(lua_State *L);

/* ---- interrupt.c: Ctrl-C (luasock_interrupt, in luasock.h) ---------- */
/* Raise "interrupted!" if luasock_interrupt was called on this state and
** no hook raised it yet: waits call it on EINTR and before they sleep. */
void interrupt_check(lua_State *L);
int interrupt_pending(lua_State *L);  /* whether interrupt_check would raise */
/* Forget an interrupt not raised yet (flag and hook): one that came after
** a chunk's last instruction must not stop what runs next.  Returns
** whether there was one. */
int interrupt_clear(lua_State *L);
/* The luasock program's SIGINT handler, which interrupts L.  INTERRUPT_OFF:
** the default action; INTERRUPT_CHUNK: while a chunk runs (a second
** Ctrl-C ends the process, as in lua.c); INTERRUPT_PROMPT: at the REPL's
** prompt, where only the next wait gives up.  Returns the mode before
** (OFF when the handler was not ours), for the caller to put back. */
enum { INTERRUPT_OFF, INTERRUPT_CHUNK, INTERRUPT_PROMPT };
int interrupt_catch(lua_State *L, int mode);

/* ---- scope.c: deadline scopes (socket.timeout) ----------------------- */
/* The deadline a wait of L's thread really ends at: the earlier of
** deadline (< 0: none) and that of the innermost socket.timeout scope L
** runs in; *cut tells that the scope's is the earlier one (a wait that
** ends there times out, even a pure delay). */
double scope_deadline(lua_State *L, double deadline, int *cut);
extern const luaL_Reg scope_funcs[];      /* timeout */
void scope_open(lua_State *L);            /* the scope guard's metatable */

/* ---- waitlist.c: waiting on a WaitList -------------------------------- */
/* Make l empty; raises when the loop is closed. */
void waitlist_init(lua_State *L, WaitList *l);
int waitlist_empty(const WaitList *l);
/*
** Wait on l until a waitlist_wake* or waitlist_take ends the wait, until
** deadline (< 0: none), or until the task is cancelled.  With box 1, the
** value on top of L is this waiter's box: others may replace it
** (waitlist_wake with a value) or take it (waitlist_take); after the wait
** it is on top again.  In a task it parks and yields like wait_fd (the
** continuation k learns the outcome from wait_resumed).  Outside a task it
** turns the loop; with no task to run it can only time out.  Returns the
** outcome: 0 (woken), LSOCK_ETIMEOUT, or what the waker chose (LSOCK_ECLOSED).
** Raises where nothing could wake it: in a task that cannot yield.
*/
int waitlist_wait(lua_State *L, WaitList *l, double deadline, int box,
                  lua_KContext ctx, lua_KFunction k);
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
/* Park t on w (NULL: timer only) until ready, deadline (< 0: none) or
** close; the caller then yields.  Returns 0, or an errno when w cannot be
** watched (the caller reports it); raises when another task already waits
** on w in that direction. */
int loop_park(Task *t, Watch *w, int dir, double deadline);
/* Park t until work(arg) has run on a helper thread; 0, or an errno when
** no thread could be started (the caller then runs work inline).  The
** caller keeps arg alive until then (wait_thread: the Task's anchors). */
int loop_parkthread(Task *t, void (*work)(void *), void *arg);
int loop_outcome(Task *t);            /* why the last park ended */
/* The record of the wait t is in: storage the Task owns (wait.c). */
Op *task_op(Task *t);
/* Anchor the values at L's stack indices a0, a1 (0: none) in t until
** the next call, and push anchor i (0 or 1) back. */
void task_anchor(lua_State *L, Task *t, int a0, int a1);
void task_pushanchor(lua_State *L, Task *t, int i);
/* An outside wait (not in a task) for w (NULL: none) to be ready for poll
** events, or for deadline: when tasks exist and neither run nor another
** turn is active, run them meanwhile (the loop "turns").  Returns 0 (ready,
** or loop_wake(w) was called), LSOCK_ETIMEOUT, LSOCK_ECLOSED (a task
** closed w), or EAGAIN when it did not wait (no task, or none left): the
** caller then polls alone.  Ctrl-C raises "interrupted!". */
int loop_turn(lua_State *L, Watch *w, short events, double deadline);
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
void watch_close(lua_State *L, Watch *w);
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

/* ---- main.c, repl.c: the luasock program (not in the library) ------ */
/* lua_pcall of the function below narg arguments with a traceback handler
** and Ctrl-C armed (luasock_interrupt); returns the pcall status. */
int main_docall(lua_State *L, int narg, int nres);
void main_message(const char *pname, const char *msg);  /* "pname: msg" on stderr */
void repl_run(lua_State *L);          /* read-eval-print until end of input */

/* ---- pool.c: helper threads for blocking work (for loop.c) --------- */
typedef struct Pool Pool;
Pool *pool_new(void);                 /* NULL with errno set on failure */
int pool_fd(Pool *p);                 /* eventfd, readable when jobs ended */
/* Run work(arg) on a helper thread for t; 0, or an errno (no memory, no
** thread could start). */
int pool_submit(Pool *p, Task *t, void (*work)(void *), void *arg);
/* pool_fd was readable: call ready(t) for each task whose job ended. */
void pool_collect(Pool *p, void (*ready)(Task *t));
void pool_free(Pool *p);              /* joins the workers first */

/* ---- tls_ctx.c: the module socket.ssl, which luaopen_socket and
** luasock_openlibs put in package.preload (it is no public entry point) */
int luaopen_socket_ssl(lua_State *L);

/* ---- Lua modules compiled in (generated lua_modules.c) ------------- */
typedef struct LuaModule { const char *name; const char *code; size_t len; } LuaModule;
extern const LuaModule lsock_lua_modules[];
/* Load the bundled module name as a chunk; raises if it is missing. */
void lsock_loadmodule(lua_State *L, const char *name);
/* Preload luasock.ssl and the bundled Lua modules under the names they
** have in the stock lua5.4 (module.c). */
void lib_preloadportable(lua_State *L);

/* ---- function tables each file contributes to luaopen_socket ------- */
extern const luaL_Reg sockio_methods[];   /* sockio.c: accept, recv, send... */
extern const luaL_Reg addr_funcs[];       /* addr.c: inet_pton, inet_ntop, gethostname */
extern const luaL_Reg resolve_funcs[];    /* resolve.c: getaddrinfo, getnameinfo... */
extern const luaL_Reg msg_methods[];      /* msg.c: sendmsg, recvmsg */
extern const luaL_Reg msg_funcs[];        /* msg.c: send_fds, recv_fds */
extern const luaL_Reg select_funcs[];     /* select.c: select */
extern const luaL_Reg stream_methods[];   /* reader.c: makefile */
/* tls_sock.c: whether s is a TLS socket holding input it can return
** without reading its descriptor (select counts it readable). */
int tls_readable(const LSocket *s);
/* tls_sock.c: a stream's recv and send on a TLS socket (s->tls): 0 with
** *n bytes (a recv's 0: the end of the stream), EAGAIN to wait in the
** call's direction, OP_WANTREAD/OP_WANTWRITE for the other one, or an
** error (LSOCK_ETLS: see its key). */
int tls_streamrecv(lua_State *L, LSocket *s, char *p, size_t len, size_t *n);
int tls_streamsend(lua_State *L, LSocket *s, const char *p, size_t len, size_t *n);
/* reader.c: the streams made from the socket at idx are closed, their
** output sent if it goes without waiting; pushes the input they had read
** and not returned, and returns it (length in *len): a TLS socket taking
** the descriptor over reads those bytes first. */
const char *stream_takeover(lua_State *L, int idx, size_t *len);
/* reader.c: from now on, record the streams made (for stream_takeover);
** socket.ssl calls it when it is loaded: a stream made before is not
** found by a takeover. */
void stream_track(lua_State *L);
extern const luaL_Reg loop_funcs[];       /* task.c: spawn, run */
extern const luaL_Reg sync_funcs[];       /* sync.c: queue, event, lock, semaphore */
void sync_open(lua_State *L);             /* sync.c: their metatables */
extern const luaL_Reg signals_funcs[];    /* signals.c: signals */
void signals_open(lua_State *L);          /* signals.c: its metatable */
void stream_open(lua_State *L);           /* reader.c: its metatable */
/* loop.c: create L's Loop (once) and mark L's main thread "no task" in
** its LUA_EXTRASPACE, which Lua leaves uninitialised and every new thread
** copies: luasock_openlibs and luaopen_socket call it, before coroutines
** that could inherit garbage exist. */
void loop_open(lua_State *L);

/* ---- addr.c: addresses --------------------------------------------- */
/* Read the address at idx (and idx+1 for "host, port") for family into
** ss; names are resolved.  Returns 0, or a resolver error (EAI_*, < 0)
** for the caller to push with err_pushgai; raises on malformed input. */
int addr_check(lua_State *L, int idx, int family, struct sockaddr_storage *ss,
               socklen_t *len);
/* Push an address table ({host, port}, or a unix path string). */
void addr_push(lua_State *L, const struct sockaddr *sa, socklen_t len);

/* ---- resolve.c: names in addresses, off the loop thread ------------ */
/* Parse the address at idx (and idx+1) for family into *ss, *len, then
** run op (wait_op): the call that uses the address, whose anchor 1 is the
** block holding ss.  A host name (AF_INET/AF_INET6, not a literal) is
** looked up first, off the loop thread in a task (which yields
** meanwhile); the port and scope are parsed before, so misuse raises
** before any query.  Returns the call's results, or a resolver error
** (nil, message, EAI code). */
int addr_run(lua_State *L, int idx, int family, struct sockaddr_storage *ss,
             socklen_t *len, Op *op);

#endif

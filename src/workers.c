/*
** workers.c - socket.run{workers = N}: the tasks on all the cores.
**
** The process that calls it becomes a supervisor.  It forks N workers;
** each gives its loop a poller, a wake descriptor and helper threads of
** its own (loop_forked), then runs its copy of the tasks spawned before
** run, as socket.run() would, and exits.  Every descriptor made before
** run is shared: a listening socket has one accept queue, and the kernel
** gives each connection to the worker whose accept comes first.
**
** The supervisor runs no task, nor any lookup: its helper threads stay
** stopped from before the first fork until run returns.  It relays each
** worker's stdout and stderr line by line through pipes (it is the only
** writer of its own, so lines from two workers never mix), restarts a
** worker that died by a signal or with a status other than 0 (later and
** later when it dies soon after its start, and gives up after a few such
** deaths), and on SIGTERM or SIGINT sends SIGTERM to every worker and
** waits for them all (SIGKILL after STOP_GRACE seconds, or at a second
** signal).  A worker dies with its supervisor (PR_SET_PDEATHSIG).  It
** waits in one poll for the signals, the pipes and its outputs: a reader
** of its stdout that stalls stalls the workers' writes, never the
** supervisor.
**
** Left out: the supervisor reaps only its workers, and it takes SIGCHLD,
** SIGTERM and SIGINT while it runs (it blocks them and reads a signalfd).
** A terminal stopped with Ctrl-S can still block a write (its POLLOUT
** does not promise PIPE_BUF bytes of room).
*/
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/loop.h"
#include "socket.h"

#define WORKERS_MAX 1024        /* a typo in N should not fork a thousand thousand */
#define RELAY_CHUNK 65536       /* bytes read from a worker's pipe at once */
#define RELAY_LINE_MAX (1 << 20)   /* a longer line is passed on in pieces */
#define QUICK_DEATH 10.0        /* s: a worker dying sooner failed to start (slow machines too) */
#define QUICK_DEATHS_MAX 5      /* in a row, then the supervisor gives up */
#define BACKOFF_FIRST 0.1       /* s before the restart after a quick death, doubling */
#define STOP_GRACE 10.0         /* s between SIGTERM and SIGKILL when stopping */
#define OUTPUT_GRACE 1.0        /* s: stopped, output nobody took for so long is dropped */
#define SAY_MAX 4096            /* bytes of the supervisor's own messages it holds */

/* Registry keys: the worker number in a worker; true while the REPL runs. */
#define WORKER_KEY "luasock.worker"
#define REPL_KEY "luasock.repl"

/* Bytes on their way to one of the supervisor's outputs: a worker's
** stream (the read end of its pipe; what a dead worker left), or the
** supervisor's own messages (no pipe).  buf[start, len) waits; buf is
** freed whenever that is empty. */
typedef struct Relay {
  int fd;        /* -1 once at its end, or for the supervisor's messages */
  int to;        /* the Output it goes to: 0 (stdout) or 1 (stderr) */
  char *buf;
  size_t start, len, cap;
} Relay;

/* One of the supervisor's outputs.  It writes only when poll says the
** descriptor takes more, at most chunk bytes a time, so that a reader
** that stalls never blocks the supervisor: it keeps reaping, restarting
** and taking signals, and the workers block on their own full pipes.
** It passes on the whole lines of one relay at a time. */
typedef struct Output {
  int fd;
  int dead;          /* a write failed: what goes to it is dropped */
  int socket;        /* sent with MSG_DONTWAIT */
  size_t chunk;      /* PIPE_BUF: after POLLOUT, a pipe takes that much without blocking */
  Relay *from;       /* whose lines are on their way, or NULL */
  size_t left;       /* bytes of them still to write */
  int next;          /* where the round of relays goes on */
} Output;

typedef struct Worker {
  pid_t pid;             /* 0 when not running */
  double started;        /* clock_now() at its start */
  double restart_at;     /* < 0: no restart pending */
  int quick;             /* quick deaths in a row */
  Relay relay[2];        /* its stdout, its stderr */
} Worker;

typedef struct Super {
  lua_State *L;
  Worker *w;
  int n;
  int sigfd;             /* SIGCHLD, SIGTERM, SIGINT */
  sigset_t oldmask;      /* the mask before run: workers get it back */
  pid_t self;
  int stopping;          /* a signal asked to stop, or it gave up */
  double kill_at;        /* stopping: when the stragglers get SIGKILL */
  double drop_at;        /* stopping, no worker left: when waiting output is dropped (< 0: not yet) */
  int hurry;             /* a second signal: what waits is dropped at once */
  Output out[2];         /* stdout, stderr (one, when both are the same file) */
  Relay own;             /* the supervisor's messages, for stderr */
  char why[160];         /* why it gave up, "" if it did not */
} Super;

/* ---- relaying output line by line ------------------------------------ */

/* Relay k: worker k / 2's stream k % 2, the supervisor's own last. */
static Relay *relay_at(Super *s, int k) {
  return k < 2 * s->n ? &s->w[k / 2].relay[k % 2] : &s->own;
}

/* Bytes at the start of what r holds that may go on now: its whole
** lines; everything at its end; a line too long goes in pieces. */
static size_t relay_ready(const Relay *r) {
  size_t n = r->len - r->start;
  if (r->fd < 0 || n >= RELAY_LINE_MAX) return n;
  const char *nl = n > 0 ? (const char *)memrchr(r->buf + r->start, '\n', n) : NULL;
  return nl != NULL ? (size_t)(nl - (r->buf + r->start)) + 1 : 0;
}

/* Room for n more bytes and a newline at r's end; 0 or ENOMEM. */
static int relay_reserve(Relay *r, size_t n) {
  if (r->len + n + 1 <= r->cap) return 0;
  if (r->start > 0) {
    memmove(r->buf, r->buf + r->start, r->len - r->start);
    r->len -= r->start, r->start = 0;
    if (r->len + n + 1 <= r->cap) return 0;
  }
  size_t cap = r->len + n + 1 > 2 * r->cap ? r->len + n + 1 : 2 * r->cap;   /* few copies */
  char *b = (char *)realloc(r->buf, cap);
  if (b == NULL) return ENOMEM;
  r->buf = b, r->cap = cap;
  return 0;
}

/* n bytes of r went on (or were dropped). */
static void relay_consume(Relay *r, size_t n) {
  r->start += n;
  if (r->start < r->len) return;
  free(r->buf);
  r->buf = NULL;
  r->start = r->len = r->cap = 0;
}

/* r's pipe ended: close it; a line left open gets its newline, so
** that the next worker's output starts on a line of its own. */
static void relay_end(Relay *r) {
  if (r->fd < 0) return;
  close(r->fd);
  r->fd = -1;
  if (r->len > r->start && r->buf[r->len - 1] != '\n') r->buf[r->len++] = '\n';   /* reserved */
}

/* Whether r's pipe is to be read: it is open, and what r holds is short
** of a whole line of the longest (else the worker waits, its pipe full). */
static int relay_wants(const Relay *r) {
  return r->fd >= 0 && r->len - r->start < RELAY_LINE_MAX;
}

/* Read what r's pipe holds now, as far as r wants; at its end close it.
** (EINTR: this is the supervisor's own pipe, not a module call that
** Ctrl-C must be able to stop; and the signals it takes are blocked.) */
static void relay_read(Relay *r) {
  while (relay_wants(r)) {
    size_t room = RELAY_LINE_MAX - (r->len - r->start);
    if (room > RELAY_CHUNK) room = RELAY_CHUNK;
    if (relay_reserve(r, room) != 0) return;   /* out of memory: the worker waits */
    ssize_t k = read(r->fd, r->buf + r->len, room);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN) return;
    if (k <= 0) { relay_end(r); return; }
    r->len += (size_t)k;
  }
}

/* A message of the supervisor's, for stderr like the workers' lines; it
** is dropped when SAY_MAX bytes of them already wait. */
static void say(Super *s, const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
  line[n++] = '\n';
  Relay *r = &s->own;
  if (r->len - r->start + (size_t)n > SAY_MAX || relay_reserve(r, (size_t)n) != 0) return;
  memcpy(r->buf + r->len, line, (size_t)n);
  r->len += (size_t)n;
}

static int same_file(int a, int b) {
  struct stat x, y;
  return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/* Outputs 0 and 1 on descriptors 1 and 2; when they are the same file
** (2>&1) all lines go through output 0, so that whole lines never mix. */
static void outputs_init(Super *s) {
  for (int i = 0; i < 2; i++) {
    Output *o = &s->out[i];
    struct stat st;
    int ok = fstat(i + 1, &st) == 0;
    *o = (Output){ .fd = i + 1 };
    o->socket = ok && S_ISSOCK(st.st_mode);
    o->chunk = ok && S_ISREG(st.st_mode) ? RELAY_LINE_MAX : PIPE_BUF;
  }
  int merged = same_file(1, 2);
  for (int k = 0; k <= 2 * s->n; k++) {
    Relay *r = relay_at(s, k);
    r->to = merged ? 0 : k == 2 * s->n ? 1 : k % 2;
  }
}

/* Whether o has lines to write: those on their way, else the next
** relay's (round robin, so that a chatty worker does not starve the
** others). */
static int output_busy(Super *s, Output *o) {
  if (o->from != NULL) return 1;
  int total = 2 * s->n + 1;
  for (int i = 0; i < total; i++) {
    int k = (o->next + i) % total;
    Relay *r = relay_at(s, k);
    size_t n = &s->out[r->to] == o ? relay_ready(r) : 0;
    if (n > 0) {
      o->from = r, o->left = n, o->next = (k + 1) % total;
      return 1;
    }
  }
  return 0;
}

/* The descriptor of o is ready (poll said so): write one chunk of the
** lines on their way.  A reader gone away (EPIPE) or any other error
** drops what goes to o from now on: the workers go on.  (EINTR and
** EAGAIN: poll again; this is the supervisor's stdout, not a module
** call.) */
static void output_write(Super *s, Output *o) {
  Relay *r = o->from;
  size_t n = o->left < o->chunk ? o->left : o->chunk;
  ssize_t k = (ssize_t)n;
  if (!o->dead) {
    const char *p = r->buf + r->start;
    k = o->socket ? send(o->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(o->fd, p, n);
    if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (k <= 0) o->dead = 1, k = (ssize_t)o->left;
    if (s->drop_at >= 0) s->drop_at = clock_now() + OUTPUT_GRACE;   /* it moves */
  }
  o->left -= (size_t)k;
  relay_consume(r, (size_t)k);
  if (o->left == 0) o->from = NULL;
}

/* Whether any output has lines to write. */
static int output_waits(Super *s) {
  return output_busy(s, &s->out[0]) || output_busy(s, &s->out[1]);
}

/* ---- a worker's life ------------------------------------------------ */

/* Under the stock lua5.4 this code is in luasock.so, which lua_close
** unloads (dlclose): keep it mapped, for worker_main goes on after. */
static void pin_module(void) {
  Dl_info info;
  if (dladdr((void *)pin_module, &info) != 0 && info.dli_fname != NULL)
    dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
}

/* In the new process: die with the supervisor, write into the pipes, take
** back the signal mask, make the loop, run the tasks, exit 0 when every
** task ended cleanly (else 1).  Never returns. */
static void worker_main(Super *s, int index, int out[2][2]) {
  lua_State *L = s->L;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != s->self) _exit(1);
  dup2(out[0][1], 1);
  dup2(out[1][1], 2);
  for (int i = 0; i < 2; i++) close(out[i][0]), close(out[i][1]);
  for (int k = 0; k <= 2 * s->n; k++) {   /* the supervisor's, not ours */
    Relay *r = relay_at(s, k);
    if (r->fd >= 0) close(r->fd);
    free(r->buf);
    r->buf = NULL;
  }
  close(s->sigfd);
  setvbuf(stdout, NULL, _IOLBF, 0);   /* a pipe now: lines go as they are printed */
  signal(SIGINT, SIG_DFL);   /* Ctrl-C reaches the supervisor too: it stops us */
  pthread_sigmask(SIG_SETMASK, &s->oldmask, NULL);
  int err = loop_forked(L);
  if (err) {
    fprintf(stderr, "luasock: worker %d cannot make its loop: %s\n", index, strerror(err));
    exit(1);
  }
  lua_pushinteger(L, index);
  lua_setfield(L, LUA_REGISTRYINDEX, WORKER_KEY);
  lua_pushcfunction(L, lsock_run);
  int ok = lua_pcall(L, 0, 1, 0) == LUA_OK;
  if (!ok) fprintf(stderr, "luasock: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
  ok = ok && lua_toboolean(L, -1);
  pin_module();
  lua_close(L);   /* as os.exit(status, true): __gc and <close> run */
  exit(ok ? 0 : 1);
}

/* Start worker i: a pipe for each output, fork.  Returns 0 or an errno. */
static int worker_start(Super *s, int i) {
  Worker *w = &s->w[i];
  int out[2][2] = { { -1, -1 }, { -1, -1 } };
  int err = 0;
  if (pipe2(out[0], O_CLOEXEC) < 0 || pipe2(out[1], O_CLOEXEC) < 0) err = errno;
  pid_t pid = err ? -1 : fork();   /* the helper threads are stopped (run_workers) */
  if (pid == 0) worker_main(s, i + 1, out);
  if (pid < 0 && !err) err = errno;
  for (int j = 0; j < 2; j++) {
    if (out[j][1] >= 0) close(out[j][1]);
    if (err && out[j][0] >= 0) close(out[j][0]);
  }
  if (err) return err;
  for (int j = 0; j < 2; j++) {   /* what the last one left waits ahead of it */
    fcntl(out[j][0], F_SETFL, O_NONBLOCK);
    w->relay[j].fd = out[j][0];
  }
  w->pid = pid;
  w->started = clock_now();
  w->restart_at = -1;
  return 0;
}

/* SIGTERM or SIGINT: ask every worker to stop; a second one kills them. */
static void workers_stop(Super *s) {
  int sig = s->stopping ? SIGKILL : SIGTERM;
  if (!s->stopping) s->kill_at = clock_now() + STOP_GRACE;
  else s->hurry = 1;   /* and no wait for a stalled output */
  s->stopping = 1;
  for (int i = 0; i < s->n; i++) {
    s->w[i].restart_at = -1;
    if (s->w[i].pid > 0) kill(s->w[i].pid, sig);
  }
}

/* Worker i could not start or died: restart it at once if it had lived
** a while, else after a delay that doubles; give up (and stop the others)
** after QUICK_DEATHS_MAX quick deaths in a row.  what says how it ended. */
static void worker_failed(Super *s, int i, const char *what) {
  Worker *w = &s->w[i];
  double now = clock_now();
  w->quick = now - w->started < QUICK_DEATH ? w->quick + 1 : 0;
  if (s->stopping) return;
  if (w->quick >= QUICK_DEATHS_MAX) {
    snprintf(s->why, sizeof s->why, "worker %d %s, %d times within %g s of its start",
             i + 1, what, w->quick, QUICK_DEATH);
    say(s, "luasock: %s: stopping", s->why);
    workers_stop(s);
    return;
  }
  double delay = w->quick == 0 ? 0 : BACKOFF_FIRST * (1 << (w->quick - 1));
  say(s, "luasock: worker %d %s: restarting in %g s", i + 1, what, delay);
  w->restart_at = now + delay;
  w->started = now + delay;   /* a start that fails counts as a quick death */
}

/* Collect the workers that ended and pass on the rest of their output. */
static void workers_reap(Super *s) {
  for (int i = 0; i < s->n; i++) {
    Worker *w = &s->w[i];
    int status;
    if (w->pid <= 0 || waitpid(w->pid, &status, WNOHANG) != w->pid) continue;
    char what[64];
    pid_t pid = w->pid;
    w->pid = 0;
    for (int j = 0; j < 2; j++) {   /* the dead write no more: take what is in the pipe */
      relay_read(&w->relay[j]);
      relay_end(&w->relay[j]);   /* the rest, if nobody took 1 MiB of it, is lost */
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;   /* its tasks ended */
    if (WIFSIGNALED(status))
      snprintf(what, sizeof what, "(pid %d) was killed by signal %d", (int)pid, WTERMSIG(status));
    else
      snprintf(what, sizeof what, "(pid %d) exited with status %d", (int)pid, WEXITSTATUS(status));
    worker_failed(s, i, what);
  }
}

/* ---- the supervisor ---------------------------------------------------- */

static int workers_alive(const Super *s) {
  int n = 0;
  for (int i = 0; i < s->n; i++) n += s->w[i].pid > 0 || s->w[i].restart_at >= 0;
  return n;
}

/* Milliseconds until the next thing to do by the clock (-1: none). */
static int next_timeout(const Super *s) {
  double next = s->stopping ? s->kill_at : -1;
  if (s->stopping && s->drop_at >= 0 && s->drop_at < next) next = s->drop_at;
  for (int i = 0; i < s->n; i++) {
    double t = s->w[i].restart_at;
    if (t >= 0 && (next < 0 || t < next)) next = t;
  }
  if (next < 0) return -1;
  double ms = (next - clock_now()) * 1000 + 1;
  return ms < 0 ? 0 : ms > 1e6 ? 1000000 : (int)ms;
}

/* Read the signals that came: SIGCHLD reaps, SIGTERM and SIGINT stop. */
static void take_signals(Super *s) {
  struct signalfd_siginfo si;
  while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGCHLD) workers_reap(s);
    else workers_stop(s);
  }
  workers_reap(s);   /* SIGCHLDs merge: look at every worker */
}

/* What the clock says: restarts due, SIGKILL for the stragglers. */
static void take_timers(Super *s) {
  double now = clock_now();
  for (int i = 0; i < s->n; i++) {
    Worker *w = &s->w[i];
    if (w->restart_at < 0 || w->restart_at > now || s->stopping) continue;
    w->restart_at = -1;
    int err = worker_start(s, i);
    if (err) {
      char what[64];
      snprintf(what, sizeof what, "could not start (%s)", strerror(err));
      worker_failed(s, i, what);
    }
  }
  if (s->stopping && now >= s->kill_at) {
    for (int i = 0; i < s->n; i++)
      if (s->w[i].pid > 0) kill(s->w[i].pid, SIGKILL);
    s->kill_at = now + STOP_GRACE;
  }
}

/* Whether to go on: a worker runs or is to be restarted, or output waits
** for its reader (when stopping, no longer than OUTPUT_GRACE since the
** reader last took some, and not after a second signal). */
static int supervising(Super *s) {
  for (int i = 0; i < 2; i++)   /* what goes nowhere goes now */
    while (s->out[i].dead && output_busy(s, &s->out[i])) output_write(s, &s->out[i]);
  if (workers_alive(s) > 0) return 1;
  if (!output_waits(s)) return 0;
  if (!s->stopping) return 1;
  if (s->hurry) return 0;
  if (s->drop_at < 0) s->drop_at = clock_now() + OUTPUT_GRACE;
  return clock_now() < s->drop_at;
}

/* The poll set of one round: the signalfd; each output with lines to
** write; each pipe whose relay has room (a full one's hang-up would
** spin the poll).  of[k] is pf[k]'s relay, else NULL. */
static int poll_set(Super *s, struct pollfd *pf, Relay **of) {
  int n = 0;
  of[n] = NULL;
  pf[n++] = (struct pollfd){ s->sigfd, POLLIN, 0 };
  for (int i = 0; i < 2; i++)
    if (output_busy(s, &s->out[i])) {
      of[n] = NULL;
      pf[n++] = (struct pollfd){ s->out[i].fd, POLLOUT, 0 };
    }
  for (int k = 0; k < 2 * s->n; k++) {
    Relay *r = relay_at(s, k);
    if (!relay_wants(r)) continue;
    of[n] = r;
    pf[n++] = (struct pollfd){ r->fd, POLLIN, 0 };
  }
  return n;
}

/* Run until no worker is left nor to be restarted, and their output went
** on; pf and of have room for 2 * s->n + 3 entries. */
static void supervise(Super *s, struct pollfd *pf, Relay **of) {
  while (supervising(s)) {
    int n = poll_set(s, pf, of);
    if (poll(pf, (nfds_t)n, next_timeout(s)) > 0) {
      for (int k = 1; k < n; k++) {
        if (!pf[k].revents) continue;
        if (of[k] != NULL) relay_read(of[k]);
        else output_write(s, &s->out[pf[k].fd == s->out[0].fd ? 0 : 1]);
      }
      if (pf[0].revents) take_signals(s);
    }
    take_timers(s);
  }
}

/* Close the pipes left and drop what nobody took. */
static void relays_free(Super *s) {
  for (int k = 0; k <= 2 * s->n; k++) {
    Relay *r = relay_at(s, k);
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    relay_consume(r, r->len - r->start);
  }
}

/* The number of CPUs this process may run on. */
static int cpu_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* The workers option of the table at idx: a whole number from 1 to
** WORKERS_MAX, "auto", or nil (1); raises on anything else, and on an
** unknown option. */
static int check_workers(lua_State *L, int idx) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "workers") != 0)
      luaL_error(L, "socket.run: unknown option '%s'", luaL_tolstring(L, -1, NULL));
  }
  lua_getfield(L, idx, "workers");
  int n = 1;
  if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "auto") == 0) {
    n = cpu_count();
  } else if (!lua_isnil(L, -1)) {
    int isnum = 0;
    lua_Integer k = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isnum) : 0;
    if (!isnum || k < 1 || k > WORKERS_MAX)
      luaL_error(L, "socket.run: workers must be a whole number from 1 to %d or \"auto\", got %s",
                 WORKERS_MAX, luaL_tolstring(L, -1, NULL));
    n = (int)k;
  }
  lua_pop(L, 1);
  return n;
}

/* Refuse where forking makes no sense. */
static void check_forkable(lua_State *L) {
  if (loop_current(L) != NULL) luaL_error(L, "socket.run{workers} called from inside a task");
  if (lua_getfield(L, LUA_REGISTRYINDEX, WORKER_KEY) != LUA_TNIL)
    luaL_error(L, "socket.run{workers} called in a worker");
  if (lua_getfield(L, LUA_REGISTRYINDEX, REPL_KEY) != LUA_TNIL)
    luaL_error(L, "socket.run{workers} cannot fork the REPL: run it in a script");
  lua_pop(L, 2);
}

/* The signal mask and SIGCHLD's action of before run.  A SIGPIPE that a
** write to a reader gone away left pending is taken first: it would kill
** a process that leaves it at its default (the stock lua5.4). */
static void restore_signals(Super *s, const struct sigaction *oldchld) {
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  struct timespec now = { 0, 0 };
  if (!sigismember(&s->oldmask, SIGPIPE))
    while (sigtimedwait(&pipe, NULL, &now) == SIGPIPE) {}
  pthread_sigmask(SIG_SETMASK, &s->oldmask, NULL);
  sigaction(SIGCHLD, oldchld, NULL);
}

/* Fork n workers and supervise them until they all ended: true, or
** false and why the supervisor gave up. */
static int run_workers(lua_State *L, int n) {
  Super s;
  memset(&s, 0, sizeof s);
  s.L = L, s.n = n, s.self = getpid(), s.drop_at = -1;
  s.w = (Worker *)lua_newuserdatauv(L, (size_t)n * sizeof *s.w, 0);
  size_t most = (size_t)(2 * n + 3);
  struct pollfd *pf = (struct pollfd *)lua_newuserdatauv(L, most * sizeof *pf, 0);
  Relay **of = (Relay **)lua_newuserdatauv(L, most * sizeof *of, 0);   /* pf[k]'s relay */
  memset(s.w, 0, (size_t)n * sizeof *s.w);
  for (int i = 0; i < n; i++) {
    s.w[i].restart_at = -1;
    for (int j = 0; j < 2; j++) s.w[i].relay[j].fd = -1;
  }
  s.own.fd = -1;
  outputs_init(&s);
  /* What the script printed must not come out twice (the workers inherit
  ** the buffers): written now, while a signal can still end the wait. */
  fflush(NULL);
  /* An ignored SIGCHLD (inherited across exec) would have the kernel reap
  ** the workers itself, and waitpid would never see one die. */
  struct sigaction dfl = { .sa_handler = SIG_DFL }, oldchld;
  sigaction(SIGCHLD, &dfl, &oldchld);
  sigset_t set, blocked;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD), sigaddset(&set, SIGTERM), sigaddset(&set, SIGINT);
  blocked = set;
  sigaddset(&blocked, SIGPIPE);   /* a reader of an output gone away: EPIPE, not death */
  pthread_sigmask(SIG_BLOCK, &blocked, &s.oldmask);
  s.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (s.sigfd < 0) {
    int err = errno;
    restore_signals(&s, &oldchld);
    return luaL_error(L, "socket.run{workers}: signalfd: %s", strerror(err));
  }
  /* No helper thread may be inside a lookup at a fork (the child would
  ** find the resolver's locks held for good): the running jobs end now,
  ** once, and the threads start again only when run returns.  The
  ** supervisor makes no lookup of its own, so the jobs still queued wait,
  ** and a restart or a stop never waits for a lookup that a scope or
  ** Ctrl-C cut short before run; each worker, a restarted one too, gets
  ** the same jobs and runs them with threads of its own. */
  loop_prefork(L);
  for (int i = 0; i < n; i++) {   /* all at once: a failure is a quick death */
    s.w[i].started = clock_now();
    s.w[i].restart_at = s.w[i].started;
  }
  take_timers(&s);
  supervise(&s, pf, of);
  loop_postfork(L);
  relays_free(&s);
  close(s.sigfd);
  restore_signals(&s, &oldchld);
  if (s.why[0] == '\0') {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, s.why);
  return 2;
}

/* socket.run(opts): with opts.workers above 1, run the tasks in that
** many processes; anything else goes to the core's socket.run. */
static int workers_run(lua_State *L) {
  int n = 1;
  if (lua_type(L, 1) == LUA_TTABLE) {
    if (luaL_getmetafield(L, 1, "__call") != LUA_TNIL) lua_pop(L, 1);   /* a callable: run(fn) */
    else {
      n = check_workers(L, 1);
      lua_settop(L, 0);
    }
  }
  if (n == 1) return lsock_run(L);
  check_forkable(L);
  return run_workers(L, n);
}

/* socket.worker() -> this worker's number (1..N), or nil outside workers. */
static int lsock_worker(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, WORKER_KEY);
  return 1;
}

void workers_open(lua_State *L) {
  lua_pushcfunction(L, workers_run);
  lua_setfield(L, -2, "run");
  lua_pushcfunction(L, lsock_worker);
  lua_setfield(L, -2, "worker");
}

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
** The supervisor runs no task.  It relays each worker's stdout and
** stderr line by line through pipes (it is the only writer of its own, so
** lines from two workers never mix), restarts a worker that died by a
** signal or with a status other than 0 (later and later when it dies
** soon after its start, and gives up after a few such deaths), and on
** SIGTERM or SIGINT sends SIGTERM to every worker and waits for them all
** (SIGKILL after STOP_GRACE seconds, or at a second signal).  A worker
** dies with its supervisor (PR_SET_PDEATHSIG).
**
** Left out: the supervisor reaps only its workers, and it takes SIGCHLD,
** SIGTERM and SIGINT while it runs (it blocks them and reads a signalfd).
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
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

/* Registry keys: the worker number in a worker; true while the REPL runs. */
#define WORKER_KEY "luasock.worker"
#define REPL_KEY "luasock.repl"

/* One of a worker's output streams: the read end of its pipe, and the
** start of a line not yet passed on. */
typedef struct Relay {
  int fd;        /* -1 once at its end */
  int to;        /* the supervisor's descriptor it goes to: 1 or 2 */
  char *buf;
  size_t len, cap;
} Relay;

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
  char why[160];         /* why it gave up, "" if it did not */
} Super;

/* ---- relaying output line by line ------------------------------------ */

/* Write all of p to fd; what cannot be written (the reader went away) is
** dropped: the workers go on. */
static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN) {
      struct pollfd pf = { fd, POLLOUT, 0 };
      poll(&pf, 1, -1);
      continue;
    }
    if (k <= 0) return;
    p += k, n -= (size_t)k;
  }
}

/* Pass on the whole lines in r's buffer (everything with all, at the end
** of the stream); a line longer than RELAY_LINE_MAX goes on as it is. */
static void relay_flush(Relay *r, int all) {
  size_t n = r->len;
  if (!all && n < RELAY_LINE_MAX) {
    while (n > 0 && r->buf[n - 1] != '\n') n--;
  }
  if (n == 0) return;
  write_all(r->to, r->buf, n);
  memmove(r->buf, r->buf + n, r->len - n);
  r->len -= n;
}

static void relay_close(Relay *r) {
  relay_flush(r, 1);
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  free(r->buf);
  r->buf = NULL;
  r->len = r->cap = 0;
}

/* Read what r's pipe holds now; at its end (or an error) close it. */
static void relay_read(Relay *r) {
  while (r->fd >= 0) {
    if (r->cap - r->len < RELAY_CHUNK) {
      char *b = (char *)realloc(r->buf, r->len + RELAY_CHUNK);
      if (b == NULL) { relay_flush(r, 1); if (r->cap == 0) return; continue; }
      r->buf = b, r->cap = r->len + RELAY_CHUNK;
    }
    ssize_t k = read(r->fd, r->buf + r->len, r->cap - r->len);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN) break;
    if (k <= 0) { relay_close(r); return; }
    r->len += (size_t)k;
    relay_flush(r, 0);
  }
}

/* ---- a worker's life ------------------------------------------------ */

/* In the new process: die with the supervisor, write into the pipes, take
** back the signal mask, make the loop, run the tasks, exit 0 when every
** task ended cleanly (else 1).  Never returns. */
static void worker_main(Super *s, int index, int out[2][2]) {
  lua_State *L = s->L;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != s->self) _exit(1);
  dup2(out[0][1], 1);
  dup2(out[1][1], 2);
  for (int i = 0; i < 2; i++) close(out[i][0]), close(out[i][1]);
  for (int i = 0; i < s->n; i++)
    for (int j = 0; j < 2; j++) {   /* the supervisor's, not ours */
      Relay *r = &s->w[i].relay[j];
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
  lua_close(L);   /* as os.exit(status, true): __gc and <close> run */
  exit(ok ? 0 : 1);
}

/* Start worker i: a pipe for each output, fork.  Returns 0 or an errno. */
static int worker_start(Super *s, int i) {
  Worker *w = &s->w[i];
  int out[2][2] = { { -1, -1 }, { -1, -1 } };
  int err = 0;
  if (pipe2(out[0], O_CLOEXEC) < 0 || pipe2(out[1], O_CLOEXEC) < 0) err = errno;
  fflush(NULL);   /* what the script printed must not come out twice */
  pid_t pid = err ? -1 : fork();
  if (pid == 0) worker_main(s, i + 1, out);
  if (pid < 0 && !err) err = errno;
  for (int j = 0; j < 2; j++) {
    if (out[j][1] >= 0) close(out[j][1]);
    if (err && out[j][0] >= 0) close(out[j][0]);
  }
  if (err) return err;
  for (int j = 0; j < 2; j++) {
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
    fprintf(stderr, "luasock: %s: stopping\n", s->why);
    workers_stop(s);
    return;
  }
  double delay = w->quick == 0 ? 0 : BACKOFF_FIRST * (1 << (w->quick - 1));
  fprintf(stderr, "luasock: worker %d %s: restarting in %g s\n", i + 1, what, delay);
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
    for (int j = 0; j < 2; j++) {   /* the dead write no more: all is in the pipe */
      relay_read(&w->relay[j]);
      relay_close(&w->relay[j]);
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

/* Run until no worker is left and none is to be restarted. */
static void supervise(Super *s) {
  size_t most = (size_t)(2 * s->n + 1);
  struct pollfd *pf = (struct pollfd *)lua_newuserdatauv(s->L, most * sizeof *pf, 0);
  Relay **of = (Relay **)lua_newuserdatauv(s->L, most * sizeof *of, 0);   /* pf[k]'s relay */
  while (workers_alive(s) > 0) {
    int n = 0;
    pf[n++] = (struct pollfd){ s->sigfd, POLLIN, 0 };
    for (int i = 0; i < s->n; i++)
      for (int j = 0; j < 2; j++)
        if (s->w[i].relay[j].fd >= 0) {
          of[n] = &s->w[i].relay[j];
          pf[n] = (struct pollfd){ of[n]->fd, POLLIN, 0 };
          n++;
        }
    if (poll(pf, (nfds_t)n, next_timeout(s)) > 0) {
      for (int k = 1; k < n; k++)
        if (pf[k].revents) relay_read(of[k]);
      if (pf[0].revents) take_signals(s);
    }
    take_timers(s);
  }
  lua_pop(s->L, 2);
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

/* Fork n workers and supervise them until they all ended: true, or
** false and why the supervisor gave up. */
static int run_workers(lua_State *L, int n) {
  Super s;
  memset(&s, 0, sizeof s);
  s.L = L, s.n = n, s.self = getpid();
  s.w = (Worker *)lua_newuserdatauv(L, (size_t)n * sizeof *s.w, 0);
  memset(s.w, 0, (size_t)n * sizeof *s.w);
  for (int i = 0; i < n; i++) {
    s.w[i].restart_at = -1;
    for (int j = 0; j < 2; j++) s.w[i].relay[j] = (Relay){ -1, j + 1, NULL, 0, 0 };
  }
  /* An ignored SIGCHLD (inherited across exec) would have the kernel reap
  ** the workers itself, and waitpid would never see one die. */
  struct sigaction dfl = { .sa_handler = SIG_DFL }, oldchld;
  sigaction(SIGCHLD, &dfl, &oldchld);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD), sigaddset(&set, SIGTERM), sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, &s.oldmask);
  s.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (s.sigfd < 0) {
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &s.oldmask, NULL);
    sigaction(SIGCHLD, &oldchld, NULL);
    return luaL_error(L, "socket.run{workers}: signalfd: %s", strerror(err));
  }
  for (int i = 0; i < n; i++) {   /* all at once: a failure is a quick death */
    s.w[i].started = clock_now();
    s.w[i].restart_at = s.w[i].started;
  }
  take_timers(&s);
  supervise(&s);
  close(s.sigfd);
  pthread_sigmask(SIG_SETMASK, &s.oldmask, NULL);
  sigaction(SIGCHLD, &oldchld, NULL);
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

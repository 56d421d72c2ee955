/*
** faultshim.c - an LD_PRELOAD library that makes the socket calls of a
** process fail now and then, as a loaded or hostile system may.
**
**   LD_PRELOAD=libfaultshim.so FAULT_SEED=7 FAULT_RATE=10 luasock script.lua
**
** At FAULT_RATE percent of the calls (seeded by FAULT_SEED, the same
** sequence for the same seed on each thread) it injects, where the call
** can meet it in real life:
**   eintr   EINTR from recv*, send*, accept*, poll, ppoll, epoll_wait
**   eagain  EAGAIN from recv*, send*, accept* on a non-blocking socket;
**           the socket's epoll registrations are re-armed (EPOLL_CTL_MOD)
**           so that an edge-triggered poller hears of the readiness again,
**           as after data that arrived just after the EAGAIN
**   shortr  a read of fewer bytes than asked (stream sockets only); the
**           socket's epoll registrations are re-armed after it, as the
**           kernel's own short reads leave nothing queued without an
**           event to come (luasock's readiness hint counts on that)
**   shortw  a write of fewer bytes than given (stream sockets only)
**   aborted ECONNABORTED from accept* (the connection stays queued)
**   emfile  EMFILE from accept* (the connection stays queued)
**   connect ECONNREFUSED from connect
**   soerror ECONNREFUSED as the SO_ERROR of getsockopt
**   sigint  once, at the first recv*, send* or accept*: SIGINT raised at the
**           process, then EINTR, as a Ctrl-C that came during the call
**           (only when FAULTS names it; FAULT_RATE does not apply)
** FAULT_GAI_DELAY_MS makes every getaddrinfo take that long first, as a
** slow resolver does (a delay, not one of the kinds: FAULT_RATE=0 leaves
** it alone), holding a lock of its own meanwhile as the C library's
** resolver holds its locks: a process forked then finds it held for good.
** FAULT_GAI_HOLD names a service (a port: "9"): a getaddrinfo of it
** first reads standard input to its end, so it hangs until the test
** closes the process's stdin, as a resolver that never answers does
** (before the delay, without the lock).
** FAULT_ARMFILE names a file: nothing is injected until it exists (a
** script creates it when the part under test begins).  FAULT_CALLS lists
** the calls that get faults, comma-separated (default: all, e.g.
** "send,recv"); FAULT_LIMIT caps the faults injected in all: with
** FAULT_RATE=100 they hit exactly the first calls after the arming.
** FAULTS lists the kinds to inject, comma-separated (default: all but
** sigint).  At
** exit the count of each kind injected is appended to the file
** FAULT_REPORT names, one "kind count" a line.
**
** Under AddressSanitizer preload its runtime first
** (LD_PRELOAD=libasan.so:libfaultshim.so): ASan's interceptors then call
** ours through dlsym(RTLD_NEXT), and ours call the C library.
*/
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>

enum { F_EINTR, F_EAGAIN, F_SHORTR, F_SHORTW, F_ABORTED, F_EMFILE, F_CONNECT, F_SOERROR,
       F_SIGINT, NKINDS };
static const char *const kind_names[NKINDS] = {
  "eintr", "eagain", "shortr", "shortw", "aborted", "emfile", "connect", "soerror", "sigint",
};

static int enabled[NKINDS];
static unsigned rate;                /* percent */
static unsigned long long seed;
static atomic_ulong injected[NKINDS];
static atomic_uint threads;
static const char *armfile;          /* NULL: armed from the start */
static atomic_int armed;
static const char *calls;            /* NULL: every call gets faults */
static long limit = -1;              /* < 0: none */
static atomic_long total;
static __thread unsigned long long rng;

#define REAL(name) \
  static __typeof__(name) *real_##name; \
  if (real_##name == NULL) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

/* The call of ours this thread is in, for FAULT_CALLS. */
static __thread const char *call_now;

/* At the top of each call we stand in for. */
#define INTERCEPT(name) REAL(name); call_now = #name

__attribute__((constructor)) static void shim_init(void) {
  const char *s = getenv("FAULT_SEED"), *r = getenv("FAULT_RATE"), *k = getenv("FAULTS");
  seed = s ? strtoull(s, NULL, 10) : 1;
  rate = r ? (unsigned)atoi(r) : 10;
  for (int i = 0; i < NKINDS; i++)
    enabled[i] = k != NULL ? strstr(k, kind_names[i]) != NULL : i != F_SIGINT;
  armfile = getenv("FAULT_ARMFILE");
  calls = getenv("FAULT_CALLS");
  const char *l = getenv("FAULT_LIMIT");
  if (l != NULL) limit = atol(l);
}

/* Whether the call name may get faults (FAULT_CALLS). */
static int chosen(const char *name) {
  if (calls == NULL) return 1;
  if (name == NULL) return 0;
  size_t n = strlen(name);
  for (const char *p = calls; (p = strstr(p, name)) != NULL; p += n)
    if ((p == calls || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
  return 0;
}

/* Whether faults may come yet (FAULT_ARMFILE exists, once and for all). */
static int is_armed(void) {
  if (armfile == NULL || atomic_load(&armed)) return 1;
  if (access(armfile, F_OK) != 0) return 0;
  atomic_store(&armed, 1);
  return 1;
}

__attribute__((destructor)) static void shim_report(void) {
  const char *path = getenv("FAULT_REPORT");
  FILE *f = path ? fopen(path, "a") : NULL;
  if (f == NULL) return;
  for (int i = 0; i < NKINDS; i++) fprintf(f, "%s %lu\n", kind_names[i], atomic_load(&injected[i]));
  fclose(f);
}

/* xorshift64*, one stream per thread, the first thread's from the seed. */
static unsigned next(void) {
  if (rng == 0) rng = (seed + 1) * 0x9E3779B97F4A7C15ull + atomic_fetch_add(&threads, 1);
  rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
  return (unsigned)((rng * 0x2545F4914F6CDD1Dull) >> 33);
}

/* Whether this call gets a fault: at the rate, if kind is enabled. */
static int roll(int kind) {
  if (!enabled[kind] || !chosen(call_now) || !is_armed() || next() % 100 >= rate) return 0;
  if (limit >= 0 && atomic_fetch_add(&total, 1) >= limit) return 0;
  atomic_fetch_add(&injected[kind], 1);
  return 1;
}

static int is_stream(int fd) {
  REAL(getsockopt);
  int type = 0;
  socklen_t len = sizeof type;
  return real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

static int is_nonblocking(int fd, int flags) {
  return (flags & MSG_DONTWAIT) || (fcntl(fd, F_GETFL) & O_NONBLOCK);
}

/* ---- epoll registrations, to re-arm after an injected EAGAIN --------- */

#define MAXFD 4096
#define SLOTS 3
static struct { int epfd; struct epoll_event ev; } regs[MAXFD][SLOTS];
static pthread_mutex_t regs_mu = PTHREAD_MUTEX_INITIALIZER;

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
  REAL(epoll_ctl);
  int rc = real_epoll_ctl(epfd, op, fd, ev);
  if (rc != 0 || fd < 0 || fd >= MAXFD) return rc;
  pthread_mutex_lock(&regs_mu);
  int free_slot = -1, i;
  for (i = 0; i < SLOTS && regs[fd][i].epfd != epfd + 1; i++)   /* epfd + 1: 0 is free */
    if (regs[fd][i].epfd == 0 && free_slot < 0) free_slot = i;
  if (op == EPOLL_CTL_DEL && i < SLOTS) regs[fd][i].epfd = 0;
  else if (op != EPOLL_CTL_DEL && (i < SLOTS || free_slot >= 0)) {
    int slot = i < SLOTS ? i : free_slot;
    regs[fd][slot].epfd = epfd + 1;
    regs[fd][slot].ev = *ev;
  }
  pthread_mutex_unlock(&regs_mu);
  return rc;
}

/* Make every poller that watches fd report its readiness again (stale
** entries of closed descriptors fail harmlessly). */
static void rearm(int fd) {
  REAL(epoll_ctl);
  if (fd < 0 || fd >= MAXFD) return;
  pthread_mutex_lock(&regs_mu);
  for (int i = 0; i < SLOTS; i++)
    if (regs[fd][i].epfd != 0)
      real_epoll_ctl(regs[fd][i].epfd - 1, EPOLL_CTL_MOD, fd, &regs[fd][i].ev);
  pthread_mutex_unlock(&regs_mu);
}

/* ---- the faults common to reads and writes -------------------------- */

/* The one SIGINT (sigint): whether this call is the one it interrupts. */
static int sigint_now(void) {
  static atomic_int sent;
  if (!enabled[F_SIGINT] || !is_armed() || atomic_exchange(&sent, 1)) return 0;
  atomic_fetch_add(&injected[F_SIGINT], 1);
  raise(SIGINT);
  return 1;
}

/* -1 with errno set when the call gets EINTR or EAGAIN, else 0. */
static int transfer_fault(int fd, int flags) {
  if (sigint_now() || roll(F_EINTR)) {
    errno = EINTR;
    return -1;
  }
  if (is_nonblocking(fd, flags) && roll(F_EAGAIN)) {
    rearm(fd);
    errno = EAGAIN;
    return -1;
  }
  return 0;
}

/* len, or fewer bytes (at least 1) for a short transfer of kind. */
static size_t maybe_short(int fd, size_t len, int kind) {
  if (len > 1 && is_stream(fd) && roll(kind)) return 1 + next() % (len - 1);
  return len;
}

/* After a read that asked for cut of the asked bytes: when the cut was
** injected, have epoll report what is still queued. */
static ssize_t after_read(int fd, size_t asked, size_t cut, ssize_t n) {
  if (cut < asked) {
    int e = errno;
    rearm(fd);
    errno = e;
  }
  return n;
}

ssize_t recv(int fd, void *buf, size_t len, int flags) {
  INTERCEPT(recv);
  if (!(flags & MSG_PEEK) && transfer_fault(fd, flags)) return -1;
  size_t cut = flags & MSG_PEEK ? len : maybe_short(fd, len, F_SHORTR);
  return after_read(fd, len, cut, real_recv(fd, buf, cut, flags));
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr, socklen_t *alen) {
  INTERCEPT(recvfrom);
  if (!(flags & MSG_PEEK) && transfer_fault(fd, flags)) return -1;
  size_t cut = flags & MSG_PEEK ? len : maybe_short(fd, len, F_SHORTR);
  return after_read(fd, len, cut, real_recvfrom(fd, buf, cut, flags, addr, alen));
}

ssize_t recvmsg(int fd, struct msghdr *m, int flags) {
  INTERCEPT(recvmsg);
  if (!(flags & MSG_PEEK) && transfer_fault(fd, flags)) return -1;
  if ((flags & MSG_PEEK) || m->msg_iovlen != 1) return real_recvmsg(fd, m, flags);
  struct iovec saved = m->msg_iov[0];
  size_t cut = maybe_short(fd, saved.iov_len, F_SHORTR);
  m->msg_iov[0].iov_len = cut;
  ssize_t n = real_recvmsg(fd, m, flags);
  m->msg_iov[0] = saved;
  return after_read(fd, saved.iov_len, cut, n);
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
  INTERCEPT(send);
  if (transfer_fault(fd, flags)) return -1;
  return real_send(fd, buf, maybe_short(fd, len, F_SHORTW), flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
               socklen_t alen) {
  INTERCEPT(sendto);
  if (transfer_fault(fd, flags)) return -1;
  return real_sendto(fd, buf, maybe_short(fd, len, F_SHORTW), flags, addr, alen);
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags) {
  INTERCEPT(sendmsg);
  if (transfer_fault(fd, flags)) return -1;
  if (m->msg_iovlen != 1 || m->msg_controllen != 0) return real_sendmsg(fd, m, flags);
  struct msghdr copy = *m;
  struct iovec iov = m->msg_iov[0];
  iov.iov_len = maybe_short(fd, iov.iov_len, F_SHORTW);
  copy.msg_iov = &iov;
  return real_sendmsg(fd, &copy, flags);
}

/* ---- accept, connect, getsockopt, polls ----------------------------- */

static int accept_fault(int fd) {
  if (transfer_fault(fd, 0)) return -1;
  if (roll(F_ABORTED)) errno = ECONNABORTED;
  else if (roll(F_EMFILE)) errno = EMFILE;
  else return 0;
  return -1;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags) {
  INTERCEPT(accept4);
  if (accept_fault(fd)) return -1;
  return real_accept4(fd, addr, alen, flags);
}

int accept(int fd, struct sockaddr *addr, socklen_t *alen) {
  INTERCEPT(accept);
  if (accept_fault(fd)) return -1;
  return real_accept(fd, addr, alen);
}

int connect(int fd, const struct sockaddr *addr, socklen_t alen) {
  INTERCEPT(connect);
  if (addr != NULL && addr->sa_family != AF_UNSPEC && roll(F_CONNECT)) {
    errno = ECONNREFUSED;
    return -1;
  }
  return real_connect(fd, addr, alen);
}

int getsockopt(int fd, int level, int name, void *val, socklen_t *len) {
  INTERCEPT(getsockopt);
  int rc = real_getsockopt(fd, level, name, val, len);
  if (rc == 0 && level == SOL_SOCKET && name == SO_ERROR && *len >= sizeof(int) &&
      *(int *)val == 0 && roll(F_SOERROR))
    *(int *)val = ECONNREFUSED;
  return rc;
}

int poll(struct pollfd *fds, nfds_t n, int ms) {
  INTERCEPT(poll);
  if (ms != 0 && roll(F_EINTR)) {
    errno = EINTR;
    return -1;
  }
  return real_poll(fds, n, ms);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask) {
  INTERCEPT(ppoll);
  if (roll(F_EINTR)) {
    errno = EINTR;
    return -1;
  }
  return real_ppoll(fds, n, t, mask);
}

int epoll_wait(int epfd, struct epoll_event *ev, int max, int ms) {
  INTERCEPT(epoll_wait);
  if (ms != 0 && roll(F_EINTR)) {
    errno = EINTR;
    return -1;
  }
  return real_epoll_wait(epfd, ev, max, ms);
}

/* FAULT_GAI_HOLD: a lookup of that service waits for the end of stdin. */
static void gai_hold(const char *service) {
  const char *held = getenv("FAULT_GAI_HOLD");
  char buf[256];
  if (held == NULL || service == NULL || strcmp(service, held) != 0) return;
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {}
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  REAL(getaddrinfo);
  gai_hold(service);
  static pthread_mutex_t resolver_lock = PTHREAD_MUTEX_INITIALIZER;
  const char *d = getenv("FAULT_GAI_DELAY_MS");
  long ms = d != NULL ? atol(d) : 0;
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  if (ms <= 0) return real_getaddrinfo(node, service, hints, res);
  pthread_mutex_lock(&resolver_lock);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
  int rc = real_getaddrinfo(node, service, hints, res);
  pthread_mutex_unlock(&resolver_lock);
  return rc;
}

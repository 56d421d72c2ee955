/*
** loadgen.c - load generator for the echo benchmark (127.0.0.1 only).
**
**   loadgen ping PORT [-c CONNS] [-d SECS] [-w WARMUP] [-z SIZE] [-s PID]
**     CONNS connections each send SIZE (64) bytes, wait for the whole echo
**     and repeat, for WARMUP + SECS seconds; only the last SECS count.
**     Prints requests/s and latency percentiles.  With -n REQUESTS it
**     makes exactly that many requests (no warm-up, no time limit) and
**     counts them all: for instruction counts (callgrind) that must not
**     depend on time.
**   loadgen bulk PORT [-b BYTES] [-s PID]
**     Echoes BYTES (1 GiB) over one connection, writing and reading at
**     the same time; checks the data and prints the throughput.
**   loadgen idle PORT [-c CONNS] [-t SECS] [-s PID]
**     Opens CONNS connections that send nothing, prints "connected N"
**     when the server holds them all, then keeps them until stdin gives
**     a line or EOF, or SECS seconds pass (-1: no limit).
**
** With -s PID (the server's pid) it also reads the server's CPU time
** (utime + stime, /proc/PID/stat, summed with its children's: a server
** of several processes counts whole) over the measured interval, paces its
** connects to the server's accepts (counting /proc/PID/fd), and in idle
** mode reports the server's VmRSS growth per connection.  Results are one
** line of key=value pairs, for the driver (run.sh) to pick apart.
*/
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXSIZE 65536
#define HIST_US 1000000          /* latency histogram: 1 us buckets up to 1 s */
#define PACE 100                 /* connects ahead of the server's accepts */

static struct {
  int port, conns, size, pid;
  double secs, warmup, hold;
  long long bytes, requests;
} opt = { 0, 50, 64, 0, 5, 1, -1, 1LL << 30, 0 };

static uint32_t hist[HIST_US + 1];

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void fail(const char *msg) {
  fprintf(stderr, "loadgen: %s\n", msg);
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the server seen through /proc ---------------------------------- */

/* The server's processes: opt.pid and its children (the workers of
** `socket.run{workers = N}`, nginx's), from /proc/PID/task/PID/children;
** returns how many went into pids. */
static int server_pids(int *pids, int max) {
  char path[96];
  int n = 0;
  pids[n++] = opt.pid;
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", opt.pid, opt.pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return n;   /* no CONFIG_PROC_CHILDREN: the one process */
  while (n < max && fscanf(f, "%d", &pids[n]) == 1) n++;
  fclose(f);
  return n;
}

#define MAXPROCS 256

/* /proc/PID/what of one of the server's processes, or NULL when that is
** a worker that ended just now (the server itself must be there). */
static FILE *proc_open(int pid, const char *what) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", pid, what);
  FILE *f = fopen(path, "r");
  if (f == NULL && pid == opt.pid) die(path);
  return f;
}

/* CPU time (user + system) of process pid in seconds. */
static double proc_cpu(int pid) {
  char buf[1024];
  FILE *f = proc_open(pid, "stat");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');   /* the command name may hold spaces */
  unsigned long ut = 0, st = 0;
  if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                          &ut, &st) != 2)
    fail("cannot parse /proc/PID/stat");
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Resident memory of process pid in KiB (VmRSS). */
static double proc_rss(int pid) {
  char line[256];
  long kb = 0;
  FILE *f = proc_open(pid, "status");
  if (f == NULL) return 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
  fclose(f);
  return (double)kb;
}

/* Number of descriptors process pid holds. */
static double proc_fds(int pid) {
  char path[64];
  int n = 0;
  snprintf(path, sizeof path, "/proc/%d/fd", pid);
  DIR *d = opendir(path);
  if (d == NULL) {
    if (pid == opt.pid) die(path);
    return 0;
  }
  for (struct dirent *e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* The sum of of(pid) over the server's processes, or -1 without -s. */
static double server_sum(double (*of)(int pid)) {
  int pids[MAXPROCS];
  double sum = 0;
  if (opt.pid <= 0) return -1;
  for (int i = 0, n = server_pids(pids, MAXPROCS); i < n; i++) sum += of(pids[i]);
  return sum;
}

/* Server CPU time (user + system) in seconds, resident memory in KiB
** (VmRSS), descriptors held; each -1 without -s. */
static double server_cpu(void) { return server_sum(proc_cpu); }
static long server_rss(void) { return (long)server_sum(proc_rss); }
static int server_fds(void) { return (int)server_sum(proc_fds); }

/* Wait (1 ms steps, 10 s at most) until the server holds want descriptors:
** it has accepted every connection made so far. */
static void wait_server_fds(int want) {
  double limit = now() + 10;
  while (server_fds() < want) {
    if (now() > limit) fail("the server does not accept our connections");
    usleep(1000);
  }
}

/* ---- connections ------------------------------------------------------ */

/* A blocking connect to 127.0.0.1:port (5 s limit), then non-blocking. */
static int dial(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  struct timeval tv = { 5, 0 };
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port) };
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* Reset instead of FIN: no TIME_WAIT pile-up between rounds. */
static void hangup(int fd) {
  struct linger lg = { 1, 0 };
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

/* Open n connections, never more than PACE ahead of the server's
** accepts (with -s), so that a short listen backlog never drops a SYN.
** base: the server's descriptor count with no connection open (a probe
** connection it has not closed yet can only make us go on early). */
static int *dial_all(int n, int base) {
  int *fds = malloc((size_t)n * sizeof *fds);
  if (fds == NULL) die("malloc");
  for (int i = 0; i < n; i++) {
    if (base >= 0 && i > 0 && i % PACE == 0) wait_server_fds(base + i);
    fds[i] = dial();
  }
  if (base >= 0) wait_server_fds(base + n);
  return fds;
}

/* Read exactly len bytes from non-blocking fd, 10 s at most. */
static void read_full(int fd, char *buf, size_t len) {
  struct pollfd p = { fd, POLLIN, 0 };
  for (size_t got = 0; got < len;) {
    ssize_t r = recv(fd, buf + got, len - got, 0);
    if (r > 0) { got += (size_t)r; continue; }
    if (r == 0) fail("server closed the connection");
    if (errno != EAGAIN && errno != EINTR) die("recv");
    if (poll(&p, 1, 10000) == 0) fail("no echo within 10 s");
  }
}

/* One 64-byte round trip on a fresh connection: the server has run its
** loop past everything it accepted before this one. */
static void probe(void) {
  char out[64], in[64];
  int fd = dial();
  memset(out, 'p', sizeof out);
  if (send(fd, out, sizeof out, MSG_NOSIGNAL) != (ssize_t)sizeof out) die("send");
  read_full(fd, in, sizeof in);
  if (memcmp(in, out, sizeof in) != 0) fail("probe: wrong echo");
  hangup(fd);
}

/* ---- ping: request/response ------------------------------------------ */

typedef struct Conn {
  int fd;
  int got;              /* bytes of the current echo received */
  double sent;          /* when the current request went out */
} Conn;

static char payload[MAXSIZE];

static void ping_send(Conn *c, double t) {
  ssize_t n = send(c->fd, payload, (size_t)opt.size, MSG_NOSIGNAL);
  if (n != opt.size) fail("send of a request was short or failed");  /* 64 B fits */
  c->got = 0;
  c->sent = t;
}

/* Latency at quantile q (0..1) from the histogram, in microseconds. */
static long quantile(uint64_t total, double q) {
  uint64_t want = (uint64_t)(q * (double)total), seen = 0;
  for (long i = 0; i <= HIST_US; i++)
    if ((seen += hist[i]) > want) return i;
  return HIST_US;
}

/* Handle readiness of c: returns 1 when a whole echo came back. */
static int ping_read(Conn *c) {
  char buf[MAXSIZE];
  ssize_t n = recv(c->fd, buf, (size_t)(opt.size - c->got), 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  if (n < 0) die("recv");
  if (n == 0) fail("server closed a connection");
  if (memcmp(buf, payload + c->got, (size_t)n) != 0) fail("ping: echoed data differs");
  c->got += (int)n;
  return c->got == opt.size;
}

/* A server that completes no request in the window (a smoke run's short
** window on a loaded machine) gets up to this much longer to complete one. */
#define STRETCH_S 20.0

/* Run the ping-pong loop until *end; count (and time) only the requests
** completed after start.  If none completed by *end, go on until the
** first one (at most STRETCH_S more) and move *end there.  Returns the
** number counted. */
static uint64_t ping_loop(int ep, Conn *conns, double start, double *end,
                          double *cpu0) {
  struct epoll_event evs[512];
  uint64_t count = 0;
  int measuring = 0;
  for (;;) {
    int n = epoll_wait(ep, evs, 512, 100);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    double t = now();
    if (!measuring && t >= start) { measuring = 1; *cpu0 = server_cpu(); }
    if (t >= *end && (count > 0 || t >= *end + STRETCH_S)) {
      if (t > *end) *end = t;
      return count;
    }
    for (int i = 0; i < n; i++) {
      Conn *c = &conns[evs[i].data.u32];
      if (!ping_read(c)) continue;
      if (measuring) {
        double us = (t - c->sent) * 1e6;
        hist[us < HIST_US ? (long)us : HIST_US]++;
        count++;
      }
      ping_send(c, t);
    }
  }
}

/* With -n: send opt.requests requests in all, a connection sending its
** next when its echo is complete, until every echo came back; the first
** `sent` went out already.  Returns the number of requests (all counted). */
static uint64_t ping_fixed(int ep, Conn *conns, long long sent) {
  struct epoll_event evs[512];
  uint64_t count = 0;
  while (count < (uint64_t)opt.requests) {
    int n = epoll_wait(ep, evs, 512, 10000);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    if (n == 0) fail("no echo within 10 s");
    double t = now();
    for (int i = 0; i < n; i++) {
      Conn *c = &conns[evs[i].data.u32];
      if (!ping_read(c)) continue;
      double us = (t - c->sent) * 1e6;
      hist[us < HIST_US ? (long)us : HIST_US]++;
      count++;
      if (sent < opt.requests) { ping_send(c, t); sent++; }
    }
  }
  return count;
}

static int mode_ping(void) {
  if (opt.size < 1 || opt.size > MAXSIZE) fail("-z must be 1..65536");
  for (size_t i = 0; i < sizeof payload; i++) payload[i] = (char)(33 + i % 90);
  int *fds = dial_all(opt.conns, server_fds());
  Conn *conns = calloc((size_t)opt.conns, sizeof *conns);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (conns == NULL || ep < 0) die("setup");
  double t0 = now(), cpu0 = -1;
  for (int i = 0; i < opt.conns; i++) {
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
    conns[i].fd = fds[i];
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) die("epoll_ctl");
    if (opt.requests == 0 || i < opt.requests) ping_send(&conns[i], t0);
  }
  double start = t0 + opt.warmup, end = start + opt.secs;
  uint64_t count;
  if (opt.requests > 0) {
    start = t0;
    cpu0 = server_cpu();
    count = ping_fixed(ep, conns, opt.requests < opt.conns ? opt.requests : opt.conns);
    end = now();
  } else {
    count = ping_loop(ep, conns, start, &end, &cpu0);
  }
  double cpu = server_cpu() - cpu0, secs = end - start;
  if (count == 0) fail("no request completed");
  printf("ping conns=%d size=%d secs=%.2f requests=%llu rps=%.0f p50_us=%ld p99_us=%ld "
         "p999_us=%ld server_cpu_s=%.2f cpu_us_per_req=%.3f\n",
         opt.conns, opt.size, secs, (unsigned long long)count, (double)count / secs,
         quantile(count, 0.50), quantile(count, 0.99), quantile(count, 0.999),
         cpu0 < 0 ? -1.0 : cpu, cpu0 < 0 ? -1.0 : cpu * 1e6 / (double)count);
  for (int i = 0; i < opt.conns; i++) hangup(fds[i]);
  return 0;
}

/* ---- bulk: throughput over one connection ---------------------------- */

/* The byte at offset i of the stream: a pattern of period 251, so that a
** lost, doubled or reordered chunk shows. */
#define PERIOD 251
static char pattern[4 * MAXSIZE + PERIOD];   /* covers the largest read */

/* Check the chunk buf[0..n) that starts at stream offset off. */
static void bulk_check(const char *buf, size_t n, long long off) {
  if (memcmp(buf, pattern + off % PERIOD, n) != 0) fail("bulk: echoed data differs");
}

/* Send what the socket takes, then read what came back, without a
** syscall to wait unless neither moved: returns whether either did. */
static int bulk_step(int fd, long long *sent, long long *got) {
  static char buf[4 * MAXSIZE];
  int moved = 0;
  if (*sent < opt.bytes) {
    size_t want = (size_t)(opt.bytes - *sent < MAXSIZE ? opt.bytes - *sent : MAXSIZE);
    ssize_t n = send(fd, pattern + *sent % PERIOD, want, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) die("send");
    if (n > 0) { *sent += n; moved = 1; }
  }
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n == 0) fail("bulk: server closed the connection");
  if (n < 0 && errno != EAGAIN && errno != EINTR) die("recv");
  if (n > 0) { bulk_check(buf, (size_t)n, *got); *got += n; moved = 1; }
  return moved;
}

static int mode_bulk(void) {
  for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = (char)(i % PERIOD);
  int fd = dial();
  long long sent = 0, got = 0;
  double t0 = now(), cpu0 = server_cpu();
  while (got < opt.bytes) {
    if (bulk_step(fd, &sent, &got)) continue;
    struct pollfd p = { fd, (short)(POLLIN | (sent < opt.bytes ? POLLOUT : 0)), 0 };
    if (poll(&p, 1, 10000) == 0) fail("bulk: stalled for 10 s");
  }
  double secs = now() - t0, cpu = server_cpu() - cpu0;
  printf("bulk bytes=%lld secs=%.3f mib_s=%.1f server_cpu_s=%.2f\n", got, secs,
         (double)got / secs / 1048576.0, cpu0 < 0 ? -1.0 : cpu);
  hangup(fd);
  return 0;
}

/* ---- idle: memory per connection --------------------------------------- */

/* Keep the connections until stdin says stop or opt.hold seconds pass. */
static void idle_hold(void) {
  struct pollfd p = { 0, POLLIN, 0 };
  int ms = opt.hold < 0 ? -1 : (int)(opt.hold * 1000);
  while (poll(&p, 1, ms) < 0 && errno == EINTR) {}
}

static int mode_idle(void) {
  int base = server_fds();
  if (opt.pid > 0) probe();   /* the server's first-connection costs go in the base */
  long rss0 = server_rss();
  double t0 = now();
  int *fds = dial_all(opt.conns, base);
  if (opt.pid > 0) probe();   /* every accepted connection has been served */
  long rss1 = server_rss();
  printf("idle conns=%d connect_s=%.2f rss_before_kib=%ld rss_after_kib=%ld "
         "bytes_per_conn=%.0f\n", opt.conns, now() - t0, rss0, rss1,
         rss0 < 0 ? -1.0 : (double)(rss1 - rss0) * 1024.0 / opt.conns);
  printf("connected %d\n", opt.conns);
  fflush(stdout);
  idle_hold();
  for (int i = 0; i < opt.conns; i++) hangup(fds[i]);
  return 0;
}

/* ---- command line ------------------------------------------------------ */

static void usage(void) {
  fputs("usage: loadgen ping|bulk|idle PORT [-c conns] [-d secs] [-w warmup]\n"
        "               [-n requests] [-z size] [-b bytes] [-t holdsecs] [-s serverpid]\n", stderr);
  exit(2);
}

/* Raise the descriptor limit to what connections need (hard limit). */
static void raise_nofile(int need) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur >= (rlim_t)need) return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)need) fail("too few descriptors allowed (ulimit -n)");
}

static void parse(int argc, char **argv) {
  if (argc < 3) usage();
  opt.port = atoi(argv[2]);
  for (int i = 3; i + 1 < argc; i += 2) {
    const char *f = argv[i], *v = argv[i + 1];
    if (!strcmp(f, "-c")) opt.conns = atoi(v);
    else if (!strcmp(f, "-d")) opt.secs = atof(v);
    else if (!strcmp(f, "-w")) opt.warmup = atof(v);
    else if (!strcmp(f, "-z")) opt.size = atoi(v);
    else if (!strcmp(f, "-b")) opt.bytes = atoll(v);
    else if (!strcmp(f, "-t")) opt.hold = atof(v);
    else if (!strcmp(f, "-s")) opt.pid = atoi(v);
    else if (!strcmp(f, "-n")) opt.requests = atoll(v);
    else usage();
  }
  if (opt.port <= 0 || opt.port > 65535 || opt.conns < 1 || opt.secs <= 0 || opt.requests < 0)
    usage();
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  parse(argc, argv);
  raise_nofile(opt.conns + 64);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(argv[1], "ping")) return mode_ping();
  if (!strcmp(argv[1], "bulk")) return mode_bulk();
  if (!strcmp(argv[1], "idle")) return mode_idle();
  usage();
}

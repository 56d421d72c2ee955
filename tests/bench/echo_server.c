/*
** echo_server.c - the reference for the benchmark: what one core can do.
**
** A single-threaded, non-blocking, level-triggered epoll echo server in
** plain C, the practical limit the luasock server is measured against.
** Usage: echo_server [port [mode]]   (binds 127.0.0.1; port 0, the
** default, picks a free one; mode "echo", the default, or "http").  It
** prints "listening on 127.0.0.1:PORT" and runs until killed.  In http
** mode it answers every request head (ended by a blank line) with one
** fixed 78-byte reply, keep-alive, as every HTTP peer of the benchmark.  Per connection it keeps nothing but the descriptor,
** unless the peer stops reading: then the unsent rest of one read is
** kept and reading from that connection pauses until it drains (so a
** bulk transfer is paced by the slower side, as a real server must be).
*/
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ 65536     /* one read, shared by all connections */
#define MAXEV 256

/* The unsent tail of a read, for a connection whose peer is slow. */
typedef struct Pending {
  size_t len, off;
  char data[];
} Pending;

static Pending **pending;   /* indexed by fd; NULL when nothing is pending */
static unsigned char *matched;  /* by fd, http: bytes of "\r\n\r\n" seen so far */
static int npending;
static int http;            /* mode http rather than echo */

static const char REPLY[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nHello, World!";

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* Make room in the pending table for descriptor fd. */
static void pending_grow(int fd) {
  if (fd < npending) return;
  int n = npending ? npending : 1024;
  while (n <= fd) n *= 2;
  pending = realloc(pending, (size_t)n * sizeof *pending);
  matched = realloc(matched, (size_t)n);
  if (pending == NULL || matched == NULL) die("realloc");
  memset(pending + npending, 0, (size_t)(n - npending) * sizeof *pending);
  memset(matched + npending, 0, (size_t)(n - npending));
  npending = n;
}

/* Bind 127.0.0.1:port, listen, and print the address line. */
static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
  if (listen(fd, SOMAXCONN) < 0) die("listen");
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
  fflush(stdout);
  return fd;
}

static void drop(int fd) {
  free(fd < npending ? pending[fd] : NULL);
  if (fd < npending) pending[fd] = NULL, matched[fd] = 0;
  close(fd);   /* also removes it from the epoll set */
}

/* Accept everything the backlog holds. */
static void on_accept(int ep, int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN) perror("accept4");   /* EMFILE: try again later */
      return;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  }
}

/* Send buf[0..len); keep what the socket would not take and switch the
** connection to waiting for EPOLLOUT.  Returns -1 if the peer is gone. */
static int send_or_keep(int ep, int fd, const char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
    if (n > 0) { off += (size_t)n; continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return -1;
    pending_grow(fd);
    Pending *p = malloc(sizeof *p + (len - off));
    if (p == NULL) die("malloc");
    p->len = len - off;
    p->off = 0;
    memcpy(p->data, buf + off, p->len);
    pending[fd] = p;
    struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    return 0;
  }
  return 0;
}

/* The peer can take more: flush the pending tail, then read again. */
static void on_writable(int ep, int fd) {
  Pending *p = pending[fd];
  while (p->off < p->len) {
    ssize_t n = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
    if (n > 0) { p->off += (size_t)n; continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    drop(fd);
    return;
  }
  free(p);
  pending[fd] = NULL;
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
  epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* http: count the request heads that end in buf[0..len) (a blank line,
** which may straddle two reads: matched[fd] carries the part seen) and
** put that many replies in out; returns their length, or -1 when more
** ended than out holds (a client that pipelines so much is dropped). */
static ssize_t http_replies(int fd, const char *buf, size_t len, char *out, size_t cap) {
  static const char end[] = "\r\n\r\n";
  size_t n = 0, rlen = sizeof REPLY - 1;
  pending_grow(fd);
  unsigned char m = matched[fd];
  for (size_t i = 0; i < len; i++) {
    m = buf[i] == end[m] ? m + 1 : buf[i] == '\r' ? 1 : 0;
    if (m == 4) { m = 0; n++; }
  }
  matched[fd] = m;
  if (n * rlen > cap) return -1;
  for (size_t i = 0; i < n; i++) memcpy(out + i * rlen, REPLY, rlen);
  return (ssize_t)(n * rlen);
}

/* One read per readiness event (level-triggered: fair between
** connections), echoed at once (or answered, in http mode). */
static void on_readable(int ep, int fd) {
  static char buf[BUFSZ], out[8 * BUFSZ];
  ssize_t n;
  do n = recv(fd, buf, sizeof buf, 0); while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) { drop(fd); return; }
  const char *reply = buf;
  if (http) {
    reply = out;
    n = http_replies(fd, buf, (size_t)n, out, sizeof out);
    if (n == 0) return;   /* no request ended yet */
  }
  if (n < 0 || send_or_keep(ep, fd, reply, (size_t)n) < 0) drop(fd);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  http = argc > 2 && strcmp(argv[2], "http") == 0;
  int lfd = listen_on(argc > 1 ? atoi(argv[1]) : 0);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, evs[MAXEV];
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl");
  for (;;) {
    int n = epoll_wait(ep, evs, MAXEV, -1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) on_accept(ep, lfd);
      else if (fd < npending && pending[fd]) on_writable(ep, fd);
      else on_readable(ep, fd);
    }
  }
}

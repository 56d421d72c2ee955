/*
** relay_server.c - the reference for the relay benchmark: a TCP relay in
** plain C that moves bytes the way socket.relay does, without Lua.
**
** Usage: relay_server TARGET_PORT   (binds 127.0.0.1 on a free port,
** prints "listening on 127.0.0.1:PORT", and relays each client, one at a
** time, to 127.0.0.1:TARGET_PORT until killed).  Each direction splices
** socket -> pipe -> socket (the pipe as large as socket.relay's); both
** sockets are non-blocking in an edge-triggered epoll set, and a pass
** moves bytes until no direction can, then waits.  When a side ends its
** stream, the end is passed on with shutdown(SHUT_WR); the client is done
** when both directions are.  One client at a time is all the benchmark
** needs (its bulk run is one connection), and keeps this short.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define PIPE_SIZE (256 * 1024)

/* One direction: from -> pipe -> to. */
typedef struct Leg {
  int from, to, pipe[2];
  size_t pending;   /* bytes in the pipe */
  int eof, done;
} Leg;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

/* Move what the leg can without waiting; returns whether it moved any. */
static int leg_step(Leg *g) {
  int moved = 0;
  while (!g->done) {
    ssize_t n;
    if (g->pending > 0) {
      n = splice(g->pipe[0], NULL, g->to, NULL, g->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0) break;
      g->pending -= (size_t)n;
    } else if (g->eof) {
      shutdown(g->to, SHUT_WR);
      g->done = 1;
    } else {
      n = splice(g->from, NULL, g->pipe[1], NULL, PIPE_SIZE, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0) break;
      g->pending = (size_t)n;
      g->eof = n == 0;
    }
    moved = 1;
  }
  if (!g->done && errno != EAGAIN) g->eof = g->done = 1;   /* a reset: give up that way */
  return moved;
}

/* Relay one client to the target until both directions end. */
static void relay(int client, int target_port) {
  int target = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in t = loopback(target_port);
  if (target < 0 || connect(target, (struct sockaddr *)&t, sizeof t) != 0) die("connect");
  int one = 1, ep = epoll_create1(EPOLL_CLOEXEC);
  Leg leg[2] = { { .from = client, .to = target }, { .from = target, .to = client } };
  for (int i = 0; i < 2; i++) {
    int fd = leg[i].from;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (pipe2(leg[i].pipe, O_NONBLOCK | O_CLOEXEC) != 0) die("pipe2");
    if (fcntl(leg[i].pipe[1], F_SETPIPE_SZ, PIPE_SIZE) < 0) die("F_SETPIPE_SZ");   /* as large as socket.relay's, or no comparison */
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
  }
  while (!(leg[0].done && leg[1].done)) {
    int moved;
    do {
      moved = leg_step(&leg[0]);
      moved |= leg_step(&leg[1]);
    } while (moved && !(leg[0].done && leg[1].done));
    struct epoll_event ev[2];
    if (!(leg[0].done && leg[1].done)) epoll_wait(ep, ev, 2, -1);
  }
  for (int i = 0; i < 2; i++) {
    close(leg[i].pipe[0]);
    close(leg[i].pipe[1]);
  }
  close(ep);
  close(target);
  close(client);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: relay_server TARGET_PORT\n");
    return 2;
  }
  int target_port = atoi(argv[1]), one = 1;
  signal(SIGPIPE, SIG_IGN);   /* a client gone mid-relay ends its relay, not the server */
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 16) != 0 ||
      getsockname(ls, (struct sockaddr *)&a, &len) != 0)
    die("listen");
  printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
  fflush(stdout);
  for (;;) {
    int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) relay(c, target_port);
    else if (errno != EINTR && errno != ECONNABORTED) die("accept");
  }
}

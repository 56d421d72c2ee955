/*
** fuzz_main.c - the libFuzzer entry points shared by the fuzz targets.
**
** Each target is this file with FUZZ_SCRIPT naming a Lua file that
** returns a function of one string (the input).  One lua_State, opened
** with luasock_openlibs, lives for the whole run; the function runs
** protected, and an error it lets through (a broken invariant: the script
** catches the errors the API is expected to raise) aborts, which libFuzzer
** reports as a crash with the input that caused it.
**
** The process must touch nothing outside this machine's loopback and its
** temporary directory, whatever the input, so the library's calls to the
** system are wrapped (-Wl,--wrap): name lookups take literals and
** "localhost" only, connect and sendto reach only loopback and unix
** addresses, and descriptors 0-2 (libFuzzer's output) are never closed.
** A watchdog thread interrupts (luasock_interrupt) an input that blocks
** (socket.sleep(math.huge) is legitimate), as Ctrl-C would; such an input
** is not a finding.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lualib.h"

#include "luasock.h"

/* ---- the wraps: nothing leaves the loopback ---------------------------- */

int __real_getaddrinfo(const char *, const char *, const struct addrinfo *, struct addrinfo **);
int __real_getnameinfo(const struct sockaddr *, socklen_t, char *, socklen_t, char *, socklen_t, int);
int __real_connect(int, const struct sockaddr *, socklen_t);
ssize_t __real_sendto(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
ssize_t __real_sendmsg(int, const struct msghdr *, int);
int __real_close(int);

int __wrap_getaddrinfo(const char *host, const char *serv, const struct addrinfo *hints,
                       struct addrinfo **res) {
  struct addrinfo h;
  memset(&h, 0, sizeof h);
  if (hints != NULL) h = *hints;
  if (host != NULL && strcmp(host, "localhost") != 0) h.ai_flags |= AI_NUMERICHOST;
  h.ai_flags |= AI_NUMERICSERV;
  return __real_getaddrinfo(host, serv, &h, res);
}

int __wrap_getnameinfo(const struct sockaddr *sa, socklen_t len, char *host, socklen_t hl,
                       char *serv, socklen_t sl, int flags) {
  return __real_getnameinfo(sa, len, host, hl, serv, sl, flags | NI_NUMERICHOST | NI_NUMERICSERV);
}

/* Loopback, unix, or no address at all. */
static int local_address(const struct sockaddr *sa, socklen_t len) {
  if (sa == NULL || len < sizeof(sa_family_t)) return 1;
  if (sa->sa_family == AF_UNIX || sa->sa_family == AF_UNSPEC) return 1;
  if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
    return (a >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return 0;
}

int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len) {
  if (!local_address(sa, len)) {
    errno = ENETUNREACH;
    return -1;
  }
  return __real_connect(fd, sa, len);
}

ssize_t __wrap_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
                      socklen_t len) {
  if (!local_address(sa, len)) {
    errno = ENETUNREACH;
    return -1;
  }
  return __real_sendto(fd, buf, n, flags, sa, len);
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr *m, int flags) {
  if (!local_address((const struct sockaddr *)m->msg_name, m->msg_namelen)) {
    errno = ENETUNREACH;
    return -1;
  }
  return __real_sendmsg(fd, m, flags);
}

int __wrap_close(int fd) {
  if (fd >= 0 && fd <= 2) return 0;   /* a script wrapped 0-2 in a socket */
  return __real_close(fd);
}

/* ---- the state and the watchdog ---------------------------------------- */

static lua_State *L;
static volatile long calls;   /* bumped before and after each input */
static pthread_t main_thread;

/* On the main thread, as Ctrl-C's handler: luasock_interrupt is meant
** for a signal handler, not for another thread (it reads the loop's state
** unlocked); the signal also makes a blocked poll return EINTR. */
static void on_wake(int sig) {
  (void)sig;
  luasock_interrupt(L);
}

/* An input that runs for more than 0.1 to 0.2 s is interrupted as Ctrl-C
** does it, by a signal to the main thread. */
static void *watchdog(void *arg) {
  (void)arg;
  long seen = -1;
  for (;;) {
    struct timespec t = { 0, 100 * 1000 * 1000 };
    nanosleep(&t, NULL);
    long now = calls;
    if (now == seen && now % 2 == 1) pthread_kill(main_thread, SIGUSR2);   /* odd: an input runs */
    seen = now;
  }
  return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  L = luaL_newstate();
  luasock_openlibs(L);
  lua_pushliteral(L, FUZZ_DIR);
  lua_setglobal(L, "FUZZ_DIR");
  if (luaL_dofile(L, FUZZ_SCRIPT) != LUA_OK || !lua_isfunction(L, -1)) {
    fprintf(stderr, "%s: %s\n", FUZZ_SCRIPT, lua_tostring(L, -1));
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.one");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_wake;   /* no SA_RESTART */
  sigaction(SIGUSR2, &sa, NULL);
  main_thread = pthread_self();
  pthread_t th;
  pthread_create(&th, NULL, watchdog, NULL);
  pthread_detach(th);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  calls++;
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.one");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL || strstr(msg, "interrupted!") == NULL) {
      fprintf(stderr, "fuzz: %s\n", msg ? msg : "(error object is not a string)");
      abort();
    }
    lua_pop(L, 1);
  }
  calls++;
  lua_settop(L, 0);
  return 0;
}

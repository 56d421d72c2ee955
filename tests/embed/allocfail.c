/*
** allocfail.c - every allocation of a workload, made to fail in turn.
**
**   allocfail workload.lua [first [step]]
**
** For N = first, first + step, ... (1 and 1 by default) it runs the
** workload in a new lua_State whose allocator fails the Nth allocation
** and the one after it (Lua retries a failed allocation once, after an
** emergency collection; our own buffers are not retried), until a run
** makes fewer than N allocations.  Each run must end well or with a clean
** "not enough memory", then lua_close must give back every byte the
** state allocated and the process must hold as many descriptors as
** before.  Memory our C code takes with malloc is checked by
** LeakSanitizer in the ASan build.  Task errors a run reports go to
** /dev/null (to stderr with ALLOCFAIL_VERBOSE set); what went wrong is
** printed on stdout.  Exit status 0 when every run was clean.
**
** What it found: descriptors received with recvmsg/recv_fds leaked when
** building the results ran out of memory (they are closed now); require
** "socket" leaked the epoll and event descriptors and the helper pool
** when an allocation failed before the Loop had its __gc (it gets it
** first now).
*/
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lualib.h"

#include "luasock.h"

typedef struct Ctl {
  size_t count;      /* allocations so far */
  size_t fail_at;    /* the one to fail (and the next); 0: none */
  size_t bytes;      /* held now */
  int failed;        /* one was failed */
} Ctl;

static void *ctl_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  Ctl *c = (Ctl *)ud;
  size_t old = p != NULL ? osize : 0;   /* for a new block osize is a type tag */
  if (nsize == 0) {
    free(p);
    c->bytes -= old;
    return NULL;
  }
  if (nsize > old) {   /* Lua assumes that shrinking never fails */
    c->count++;
    if (c->fail_at != 0 && (c->count == c->fail_at || c->count == c->fail_at + 1)) {
      c->failed = 1;
      return NULL;
    }
  }
  void *q = realloc(p, nsize);
  if (q != NULL) c->bytes = c->bytes - old + nsize;
  return q;
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (d == NULL) return -1;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n;
}

/* Protected: open the libraries, load the workload and run it with a
** table whose slot 1 receives the descriptors the script took over. */
static int workload(lua_State *L) {
  const char *path = (const char *)lua_touserdata(L, 1);
  luasock_openlibs(L);
  if (luaL_loadfile(L, path) != LUA_OK) return lua_error(L);
  lua_createtable(L, 1, 0);
  lua_pushboolean(L, 0);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "allocfail.got");
  lua_call(L, 1, 1);
  return 1;
}

/* Close the descriptors the script received (allocation is allowed now). */
static void close_received(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, "allocfail.got") == LUA_TTABLE &&
      lua_rawgeti(L, -1, 1) == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TNUMBER; i++) {
      close((int)lua_tointeger(L, -1));
      lua_pop(L, 1);
    }
  }
}

/* One run failing allocation n; 1 if it was clean.  When the workload
** needed fewer than n allocations, *done is set to their count. */
static int run_once(const char *path, size_t n, size_t *done) {
  Ctl ctl = { 0, n, 0, 0 };
  int fds = count_fds(), clean = 1;
  lua_State *L = lua_newstate(ctl_alloc, &ctl);
  if (L == NULL) return 1;   /* a clean failure too */
  lua_pushcfunction(L, workload);
  lua_pushlightuserdata(L, (void *)path);
  int status = lua_pcall(L, 1, 1, 0);
  ctl.fail_at = 0;
  const char *msg = lua_tostring(L, -1);
  if (status != LUA_OK && status != LUA_ERRMEM &&
      (msg == NULL || strstr(msg, "not enough memory") == NULL)) {
    printf("allocation %zu: failed with: %s\n", n, msg ? msg : "(not a string)");
    clean = 0;
  } else if (status == LUA_OK && (msg == NULL || strcmp(msg, "done") != 0)) {
    printf("allocation %zu: the workload did not finish\n", n);
    clean = 0;
  }
  if (!ctl.failed) *done = ctl.count;
  close_received(L);
  lua_close(L);
  if (ctl.bytes != 0) {
    printf("allocation %zu: lua_close left %zu bytes\n", n, ctl.bytes);
    clean = 0;
  }
  if (count_fds() != fds) {
    printf("allocation %zu: %d descriptors leaked\n", n, count_fds() - fds);
    clean = 0;
  }
  return clean;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: allocfail workload.lua [first [step]]\n");
    return 2;
  }
  size_t first = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
  size_t step = argc > 3 ? strtoul(argv[3], NULL, 10) : 1;
  int saved = dup(2), null = open("/dev/null", O_WRONLY);
  size_t runs = 0, bad = 0, n, done = 0;
  if (getenv("ALLOCFAIL_VERBOSE") == NULL) dup2(null, 2);
  for (n = first; !done; n += step) {
    runs++;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!run_once(argv[1], n, &done)) bad++;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (dt > 0.3) printf("allocation %zu: %.2f s\n", n, dt);
    fflush(stdout);
  }
  dup2(saved, 2);
  close(saved);
  close(null);
  printf("allocfail: %zu runs (allocations %zu to %zu, step %zu, of %zu), %zu unclean\n",
         runs, first, n - step, step, done, bad);
  return bad == 0 ? 0 : 1;
}

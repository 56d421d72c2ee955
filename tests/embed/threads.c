/*
** threads.c - two lua_States, each with its own loop, on two threads of
** one embedding program, through luasock.h alone.
**
** Each state runs an echo server and its clients as tasks (names looked
** up on its helper threads, the main thread of the state waiting outside
** any task while its loop turns), both at the same time.  Meanwhile the
** first state blocks in a recv and SIGINT, sent to its thread, reaches
** luasock_interrupt: that wait, and nothing in the other state, ends with
** "interrupted!"; both states then serve again.  When the loop's state
** was process-wide (the task being resumed, the interrupt flag, the
** eventfd a Ctrl-C writes, the list of waiting selects), the second
** state's tasks failed with "interrupted!" too, every run.
**
** Each state counts its own TLS objects (ssl._live_objects): one state's
** TLS socket is not in the other's count (the count was process-wide).
**
** Exits 0 only if everything went well.
*/
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "lauxlib.h"
#include "lualib.h"

#include "luasock.h"

#define ROUNDS 100   /* round trips per client */
#define CLIENTS 8

/* An echo server and CLIENTS clients, all tasks; the main thread waits
** outside any task for the last client's word (its loop turns meanwhile)
** and a select over a socket the server closes wakes with "closed". */
static const char workload[] =
  "local socket, rounds, nclients = require 'socket', ...\n"
  "local srv = assert(socket.socket())\n"
  "srv:settimeout(10)\n"
  "assert(srv:bind('127.0.0.1', 0))\n"
  "assert(srv:listen(64))\n"
  "local port = srv:getsockname().port\n"
  "local done_r, done_w = assert(socket.socketpair())\n"
  "done_r:settimeout(10)\n"
  "local left = nclients\n"
  "local function echo(conn)\n"
  "  conn:settimeout(10)\n"
  "  while true do\n"
  "    local data = assert(conn:recv(100))\n"
  "    if data == '' then break end\n"
  "    assert(conn:sendall(data))\n"
  "  end\n"
  "  conn:close()\n"
  "end\n"
  "socket.spawn(function()\n"
  "  for _ = 1, nclients do socket.spawn(echo, assert(srv:accept())) end\n"
  "end)\n"
  "local function client(i)\n"
  "  local c = assert(socket.socket())\n"
  "  c:settimeout(10)\n"
  "  assert(c:connect('localhost', port))\n"
  "  for r = 1, rounds do\n"
  "    local msg, got = ('%d:%d'):format(i, r), ''\n"
  "    assert(c:sendall(msg))\n"
  "    while #got < #msg do got = got .. assert(c:recv(100)) end\n"
  "    assert(got == msg, 'got ' .. got .. ' for ' .. msg)\n"
  "  end\n"
  "  c:close()\n"
  "  left = left - 1\n"
  "  if left == 0 then assert(done_w:sendall('done')) end\n"
  "end\n"
  "for i = 1, nclients do socket.spawn(client, i) end\n"
  "assert(done_r:recv(4) == 'done', 'the clients did not finish')\n"
  "local a, b = assert(socket.socketpair())\n"
  "socket.spawn(function() b:close() end)\n"
  "local r, w, code = socket.select({b}, nil, 10)\n"
  "assert(r == nil and w == 'closed', 'select: ' .. tostring(w))\n"
  "assert(socket.run())\n"
  "a:close(); srv:close(); done_r:close(); done_w:close()\n";

/* Tell the C side that the recv below is about to wait, then wait for
** ever: only an interrupt ends it. */
static const char blocker[] =
  "local socket, ready = require 'socket', ...\n"
  "local a, b = assert(socket.socketpair())\n"
  "ready()\n"
  "a:recv(1)\n";

static sem_t blocked;                        /* the first state is in blocker */
static lua_State *volatile first_state;      /* what SIGINT interrupts */
static atomic_int first_done;                /* the first thread has finished */

static void on_sigint(int sig) {
  (void)sig;
  luasock_interrupt(first_state);
}

static int ready(lua_State *L) {
  (void)L;
  sem_post(&blocked);
  return 0;
}

/* Run code in L with its arguments; returns the error message (in buf) or
** NULL. */
static const char *run(lua_State *L, const char *code, int withready, char *buf, size_t len) {
  int status = luaL_loadstring(L, code);
  if (status == LUA_OK) {
    if (withready) {
      lua_pushcfunction(L, ready);
      status = lua_pcall(L, 1, 0, 0);
    } else {
      lua_pushinteger(L, ROUNDS);
      lua_pushinteger(L, CLIENTS);
      status = lua_pcall(L, 2, 0, 0);
    }
  }
  if (status == LUA_OK) return NULL;
  snprintf(buf, len, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(no message)");
  lua_pop(L, 1);
  return buf;
}

/* The first thread: serve, block until interrupted, serve again. */
static void *first_main(void *arg) {
  char buf[512];
  const char *err;
  int *ok = (int *)arg;
  lua_State *L = luaL_newstate();
  if (L == NULL) { *ok = 0; first_done = 1; sem_post(&blocked); return NULL; }
  luasock_openlibs(L);
  first_state = L;
  sigset_t intr;
  sigemptyset(&intr);
  sigaddset(&intr, SIGINT);
  pthread_sigmask(SIG_UNBLOCK, &intr, NULL);   /* SIGINT comes to this thread */
  if ((err = run(L, workload, 0, buf, sizeof buf)) != NULL) {
    fprintf(stderr, "threads: first state, first run: %s\n", err);
    *ok = 0;
  }
  err = run(L, blocker, 1, buf, sizeof buf);
  if (err == NULL || strstr(err, "interrupted!") == NULL) {
    fprintf(stderr, "threads: the blocked recv ended with %s\n", err ? err : "no error");
    *ok = 0;
  }
  if ((err = run(L, workload, 0, buf, sizeof buf)) != NULL) {
    fprintf(stderr, "threads: first state, after the interrupt: %s\n", err);
    *ok = 0;
  }
  lua_close(L);
  first_done = 1;
  return NULL;
}

/* The second thread: serve until the first has finished (at least twice,
** so that its loop runs while the first one is interrupted). */
static void *second_main(void *arg) {
  char buf[512];
  const char *err;
  int *ok = (int *)arg;
  lua_State *L = luaL_newstate();
  if (L == NULL) { *ok = 0; return NULL; }
  luasock_openlibs(L);
  for (int n = 0; n < 2 || !first_done; n++) {
    if ((err = run(L, workload, 0, buf, sizeof buf)) != NULL) {
      fprintf(stderr, "threads: second state, run %d: %s\n", n + 1, err);
      *ok = 0;
      break;
    }
  }
  lua_close(L);
  return NULL;
}

/* A state with one TLS socket (no handshake yet) and one without: each
** counts only its own SSL objects.  Returns 1 when they do. */
static int live_counts_apart(void) {
  lua_State *a = luaL_newstate(), *b = luaL_newstate();
  if (a == NULL || b == NULL) return 0;
  luasock_openlibs(a);
  luasock_openlibs(b);
  int ok = luaL_dostring(a, "local socket, ssl = require 'socket', require 'socket.ssl'\n"
                            "local ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
                            "tls = ctx:wrap_socket(socket.socket(), {server_hostname = 'localhost'})\n"
                            "return ssl._live_objects()") == LUA_OK &&
           lua_tointeger(a, -1) == 1 &&
           luaL_dostring(b, "return require('socket.ssl')._live_objects()") == LUA_OK &&
           lua_tointeger(b, -1) == 0;
  if (!ok) fprintf(stderr, "threads: live TLS counts: %s / %s\n", lua_tostring(a, -1), lua_tostring(b, -1));
  lua_close(a);
  lua_close(b);
  return ok;
}

int main(void) {
  if (!live_counts_apart()) return 1;
  int ok1 = 1, ok2 = 1;
  pthread_t first, second;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;   /* no SA_RESTART: the waiting poll sees EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigset_t intr;
  sigemptyset(&intr);
  sigaddset(&intr, SIGINT);
  pthread_sigmask(SIG_BLOCK, &intr, NULL);   /* threads made now inherit it */
  sem_init(&blocked, 0, 0);
  pthread_create(&first, NULL, first_main, &ok1);
  pthread_create(&second, NULL, second_main, &ok2);
  sem_wait(&blocked);
  pthread_kill(first, SIGINT);
  pthread_join(first, NULL);
  pthread_join(second, NULL);
  if (ok1 && ok2) puts("threads: ok");
  return ok1 && ok2 ? 0 : 1;
}

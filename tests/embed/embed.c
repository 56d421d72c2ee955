/*
** embed.c - an application with its own lua_State that embeds luasock
** through luasock.h alone, as the README tells embedders to.
**
**   embed [libdir]
**
** Runs a chunk that requires socket and uses it, in a state opened with
** luasock_openlibs, in a state that only registers luaopen_socket, and in
** a coroutine made before the module was opened.
** Runs a chunk that requires socket and socket.ssl and uses them, in a state opened with
** luasock_openlibs, then in a state that only registers luaopen_socket.
** With libdir, also checks that the libluasock this process mapped is
** the one under libdir (so the test really uses the installed library);
** libdir may be reached through symbolic links, /proc/self/maps names the
** real path.  Exits 0 only if everything went well.
*/
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lauxlib.h"
#include "lualib.h"

#include "luasock.h"

/* Arguments: AF_INET as the C headers see it, and the expected libdir. */
static const char chunk[] =
  "local af_inet, libdir = ...\n"
  "local socket = require 'socket'\n"
  "assert(socket.AF_INET == af_inet, 'socket.AF_INET is wrong')\n"
  "local s = assert(socket.socket(socket.AF_INET, socket.SOCK_STREAM))\n"
  "assert(s:fileno() >= 0, 'no descriptor')\n"
  "assert(s:close() == true, 'close failed')\n"
  "assert(s:fileno() == -1, 'still open after close')\n"
  "assert(socket.run(function()\n"
  "  local a, b = assert(socket.socketpair())\n"
  "  assert(a:send('x') == 1 and b:recv(1) == 'x', 'no exchange in a task')\n"
  "end))\n"
  "local ssl = require 'socket.ssl'\n"
  "assert(ssl.create_default_context().check_hostname, 'socket.ssl is not usable')\n"
  "if libdir then\n"
  "  local maps = assert(io.open('/proc/self/maps')):read('a')\n"
  "  local lib = assert(maps:match('%s(/%S*libluasock%.so[%.%d]*)\\n'), 'libluasock not mapped')\n"
  "  assert(lib:sub(1, #libdir + 1) == libdir .. '/', 'mapped ' .. lib .. ', not from ' .. libdir)\n"
  "end\n";

/* Run the chunk on co, a thread of L (or L itself), then close L;
** prints the error and returns 0 if it failed. */
static int run_on(lua_State *L, lua_State *co, const char *what, const char *libdir) {
  int ok = luaL_loadstring(co, chunk) == LUA_OK;
  if (ok) {
    lua_pushinteger(co, AF_INET);
    if (libdir) lua_pushstring(co, libdir); else lua_pushnil(co);
    ok = lua_pcall(co, 2, 0, 0) == LUA_OK;
  }
  if (!ok) fprintf(stderr, "embed (%s): %s\n", what, lua_tostring(co, -1));
  lua_close(L);
  return ok;
}

static int run(lua_State *L, const char *what, const char *libdir) {
  return run_on(L, L, what, libdir);
}

/* A state with everything luasock_openlibs gives: socket, bundled modules. */
static int with_openlibs(const char *libdir) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return 0;
  luasock_openlibs(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  int bundled = lua_getfield(L, -1, "luasock.create") == LUA_TFUNCTION;
  lua_pop(L, 2);
  if (!bundled) fprintf(stderr, "embed: luasock.create is not in package.preload\n");
  return run(L, "luasock_openlibs", libdir) && bundled;
}

/* A state with Lua's libraries and only the socket module registered. */
static int with_requiref(const char *libdir) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return 0;
  luaL_openlibs(L);
  luaL_requiref(L, "socket", luaopen_socket, 0);
  lua_pop(L, 1);
  return run(L, "luaopen_socket", libdir);
}

/* The stock lua5.4 may have made coroutines before it loads the module:
** such a thread copied the main thread's extra space before the module
** set it (NULL where the allocator zeroed it, as here) and finds the loop
** through the registry.  It raised "the socket loop is closed" before. */
static int with_early_thread(const char *libdir) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return 0;
  memset(lua_getextraspace(L), 0, LUA_EXTRASPACE);
  luaL_openlibs(L);
  lua_State *co = lua_newthread(L);   /* stays on L's stack: not collected */
  luaL_requiref(L, "socket", luaopen_socket, 0);
  lua_pop(L, 1);
  return run_on(L, co, "a thread made before luaopen_socket", libdir);
}

int main(int argc, char **argv) {
  static char real[PATH_MAX];
  const char *libdir = NULL;
  if (argc > 1 && (libdir = realpath(argv[1], real)) == NULL) {
    perror(argv[1]);
    return 1;
  }
  int ok = with_openlibs(libdir);
  ok = with_requiref(libdir) && ok;
  ok = with_early_thread(libdir) && ok;
  if (ok) puts("embed: ok");
  return ok ? 0 : 1;
}

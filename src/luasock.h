/*
** luasock.h - embed luasock in an application that has its own lua_State.
**
**   luasock_openlibs(L);             -- standard libraries, socket, and
**                                    -- the bundled Lua modules preloaded
**   luaL_requiref(L, "socket", luaopen_socket, 1);   -- or just the module
**
** Link with `pkg-config --cflags --libs luasock`.  luasock uses the
** LUA_EXTRASPACE area of the threads it runs as tasks; leave it to us.
** Call luasock_openlibs or luaopen_socket before the application creates
** any coroutine: Lua leaves that area uninitialised and every new thread
** copies it, so a coroutine made earlier holds garbage there.
*/
#ifndef LUASOCK_H
#define LUASOCK_H

#include "lua.h"

#define LUASOCK_VERSION "luasock 0.1"

/* What the library exports: everything else in it is hidden. */
#if defined(__GNUC__)
#define LUASOCK_API extern __attribute__((visibility("default")))
#else
#define LUASOCK_API extern
#endif

/* The socket module: pushes its table (the `socket` global of the REPL). */
LUASOCK_API int luaopen_socket(lua_State *L);

/* Open Lua's standard libraries, then put `socket`, `socket.ssl` and the bundled Lua
** modules into package.preload so that require finds them. */
LUASOCK_API void luasock_openlibs(lua_State *L);

/* Ask L (a state that opened luasock) to stop what it is running with
** the error "interrupted!", as Ctrl-C does in lua5.4.  Safe to call from
** a signal handler: it wakes L's socket waits too (a poll sees EINTR, the
** loop's epoll_wait an eventfd, and both check L's flag).  Only L stops:
** other states, on other threads, go on. */
LUASOCK_API void luasock_interrupt(lua_State *L);

#endif

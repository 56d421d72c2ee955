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

/* The socket module: pushes its table (the `socket` global of the REPL). */
int luaopen_socket(lua_State *L);

/* The TLS module socket.ssl (on OpenSSL): pushes its table. */
int luaopen_socket_ssl(lua_State *L);

/* Open Lua's standard libraries, then put `socket`, `socket.ssl` and the bundled Lua
** modules into package.preload so that require finds them. */
void luasock_openlibs(lua_State *L);

/* Ask L to stop what it is running with the error "interrupted!", as
** Ctrl-C does in lua5.4.  Safe to call from a signal handler: it wakes a
** socket wait too (the waiting poll sees EINTR and checks a flag). */
void luasock_interrupt(lua_State *L);

#endif

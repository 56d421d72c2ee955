/*
** base/errors.h - the error convention.  In C an operation reports one
** int: 0 for success, a positive errno, or one of the negative LSOCK_E*
** codes below.  Only errors.c turns that int into Lua values (nil,
** message, errno); see docs/architecture.md, "Errors".
*/
#ifndef LSOCK_ERRORS_H
#define LSOCK_ERRORS_H

#include "lua.h"
#include "lauxlib.h"

/* Our own error codes: negative and far from the EAI_* codes. */
#define LSOCK_ETIMEOUT (-1000)  /* a deadline passed: nil, "timeout", ETIMEDOUT */
#define LSOCK_ECLOSED  (-1001)  /* closed by this side while waiting: nil, "closed", EBADF */
/* A TLS failure in a stream call: the TLS layer left its message and code
** (a string) in the registry at LSOCK_TLSERR_KEY for err_push to use. */
#define LSOCK_ETLS     (-1100)
#define LSOCK_TLSERR_KEY "luasock.ssl.lasterror"
#define LSOCK_ETOOLONG (-1002)  /* a line past the stream's limit: nil, "line too long", EMSGSIZE */

/* ---- errors.c: C errors into Lua values ---------------------------- */
int err_push(lua_State *L, int err);        /* pushes nil, message, code; returns 3 */
/* Resolver error: nil, gai_strerror, code; for EAI_SYSTEM the errno saved
** right after the resolver returned. */
int err_pushgai(lua_State *L, int code, int saved_errno);
int err_pushresult(lua_State *L, int err);  /* true, or (err != 0) err_push */
const char *err_message(int err);           /* text for an err int */
void err_pusherrnotable(lua_State *L);      /* pushes the socket.errno table */

#endif

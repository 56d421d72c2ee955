/*
** addr.h - addresses: what addr.c and resolve.c give the module files.
**
** resolve.c (name resolution) checks and pushes addresses with the same
** code as addr.c (address conversion), so the two layers agree on what an
** address looks like.  The rest of the project uses only the addr_*
** functions declared below.  The contracts are above each definition
** in addr.c.
*/
#ifndef LSOCK_ADDR_H
#define LSOCK_ADDR_H

#include <sys/socket.h>

#include "lua.h"
#include "core/wait.h"

/* Push the host of an AF_INET or AF_INET6 address as a literal. */
void addr_pushhost(lua_State *L, const struct sockaddr *sa);
/* The string at idx with no zero byte in it, else raise against arg. */
const char *addr_checkcstring(lua_State *L, int idx, int arg);
/* The port at idx: an integer in 0..65535, else raise against arg. */
int addr_checkport(lua_State *L, int idx, int arg);
/* Push the host and port of the address at idx; raises unless the host
** is a string. */
void addr_pushhostport(lua_State *L, int idx);
/* Fill ss from the AF_INET/AF_INET6 address at idx; 0 or an EAI_* code. */
int addr_checkinet(lua_State *L, int idx, int family, struct sockaddr_storage *ss,
                   socklen_t *len);

/* ---- addr.c: addresses --------------------------------------------- */
/* Read the address at idx (and idx+1 for "host, port") for family into
** ss; names are resolved.  Returns 0, or a resolver error (EAI_*, < 0)
** for the caller to push with err_pushgai; raises on malformed input. */
int addr_check(lua_State *L, int idx, int family, struct sockaddr_storage *ss,
               socklen_t *len);
/* Push an address table ({host, port}, or a unix path string). */
void addr_push(lua_State *L, const struct sockaddr *sa, socklen_t len);

/* ---- resolve.c: names in addresses, off the loop thread ------------ */
/* Parse the address at idx (and idx+1) for family into *ss, *len, then
** run op (wait_op): the call that uses the address, whose anchor 1 is the
** block holding ss.  A host name (AF_INET/AF_INET6, not a literal) is
** looked up first, off the loop thread in a task (which yields
** meanwhile); the port and scope are parsed before, so misuse raises
** before any query.  Returns the call's results, or a resolver error
** (nil, message, EAI code). */
int resolve_run(lua_State *L, int idx, int family, struct sockaddr_storage *ss,
             socklen_t *len, Op *op);

#endif

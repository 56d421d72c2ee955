/*
** addr.h - what addr.c lends resolve.c, and nothing else includes.
**
** resolve.c (name resolution) checks and pushes addresses with the same
** code as addr.c (address conversion), so the two layers agree on what an
** address looks like.  The rest of the project uses only the addr_*
** functions declared in lsock.h.  The contracts are above each definition
** in addr.c.
*/
#ifndef LSOCK_ADDR_H
#define LSOCK_ADDR_H

#include <sys/socket.h>

#include "lua.h"

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

#endif

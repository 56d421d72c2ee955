/*
** tls_lib.c - OpenSSL loaded at the first use of TLS (see tls_lib.h): one
** dlopen per process, shared by every Lua state, never closed once every
** function was found (a library without one is closed at once).
*/
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lauxlib.h"

#include "tls_lib.h"

#define TLS_DEFINE(f) __typeof__(tlsfn_##f) tlsfn_##f;
TLS_FUNCS(TLS_DEFINE)

#define STR_(x) #x
#define STR(x) STR_(x)
#define LIBSSL "libssl.so." STR(OPENSSL_SHLIB_VERSION)

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[256];   /* empty once every pointer is set */

typedef struct { const char *name; void *ptr; } TLSFunc;

/* A library that lacks a function is of no use: clear the n pointers
** already set into it (nothing may call into it) and close it. */
static void unload(void *lib, const TLSFunc *funcs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    void (*none)(void) = NULL;
    memcpy(funcs[i].ptr, &none, sizeof none);
  }
  dlclose(lib);
}

/* dlsym's result goes into the pointer through memcpy: ISO C has no cast
** between object and function pointers. */
static void load(void) {
  static const TLSFunc funcs[] = {
#define TLS_ENTRY(f) {#f, (void *)&tlsfn_##f},
    TLS_FUNCS(TLS_ENTRY)
  };
  void *lib = dlopen(LIBSSL, RTLD_LAZY | RTLD_LOCAL);
  if (lib == NULL) {
    snprintf(load_error, sizeof load_error, "%s", dlerror());
    return;
  }
  for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++) {
    void *f = dlsym(lib, funcs[i].name);
    if (f == NULL) {
      snprintf(load_error, sizeof load_error, "%s has no %s", LIBSSL, funcs[i].name);
      unload(lib, funcs, i);
      return;
    }
    memcpy(funcs[i].ptr, &f, sizeof f);
  }
}

void tls_load(lua_State *L) {
  pthread_once(&load_once, load);
  if (load_error[0] != '\0') luaL_error(L, "TLS is not available: %s", load_error);
}

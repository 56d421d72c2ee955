/*
** program/alloc.c - the program's Lua allocator.  Blocks of up to 1 KiB
** come from size classes 16 bytes apart, carved in turn from one region
** of address space reserved at start, without malloc's header and
** rounding: Lua gives the size of
** every block it frees or resizes.  An idle connection of a server is
** made of a few such blocks (its coroutine's state, stack and call
** frames, its task, its socket): about 80 bytes less each than with
** malloc.  A freed block goes back to its class's list for the next
** block of that class.  Larger blocks, and the blocks luaL_newstate made
** before the state used this allocator, are malloc's: the region's bounds
** tell them apart.  Not used under AddressSanitizer, which must see every
** block, nor where the region cannot be reserved.
**
** The region is reserved inaccessible (PROT_NONE), which the kernel does
** not count against its commit limit, and made readable and writable a
** step at a time as blocks are carved: with vm.overcommit_memory=2 a
** writable reservation is charged in full (MAP_NORESERVE is ignored
** there), and again in every process a fork makes.  Pages become memory
** only when touched.
**
** Left out: freed blocks stay on their class's list and their pages stay
** the process's, so after a spike RSS stays at its peak (giving a page
** back needs to know that every block on it is free).
*/
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "program/program.h"

#define SMALL_MAX 1024                   /* larger blocks are malloc's */
#define GRAIN 16                         /* class size step; keeps 16-byte alignment */
#define NCLASSES (SMALL_MAX / GRAIN + 1)
#define REGION_SIZE ((size_t)16 << 30)   /* address space, not memory */
#define OPEN_STEP ((size_t)1 << 20)      /* made accessible this much at a time */

typedef struct Block { struct Block *next; } Block;

struct Arena {
  Block *free[NCLASSES];                 /* freed blocks of each class */
  char *base, *cur, *end;                /* the region; cur: its unused part */
  char *open;                            /* [base, open) is accessible */
};

static size_t class_of(size_t n) {
  return (n + GRAIN - 1) / GRAIN;
}

static int owns(const Arena *a, const void *p) {
  return (const char *)p >= a->base && (const char *)p < a->end;
}

/* Make the next step of the region accessible; 0 when the region is used
** up or the kernel refuses (its commit limit). */
static int open_step(Arena *a) {
  size_t left = (size_t)(a->end - a->open);
  size_t step = left < OPEN_STEP ? left : OPEN_STEP;
  if (step == 0 || mprotect(a->open, step, PROT_READ | PROT_WRITE) != 0) return 0;
  a->open += step;
  return 1;
}

/* NULL once the region is used up: malloc's then. */
static void *small_alloc(Arena *a, size_t n) {
  size_t c = class_of(n), size = c * GRAIN;
  Block *b = a->free[c];
  if (b != NULL) {
    a->free[c] = b->next;
    return b;
  }
  if ((size_t)(a->open - a->cur) < size && !open_step(a)) return NULL;
  void *p = a->cur;
  a->cur += size;
  return p;
}

static void release(Arena *a, void *p, size_t n) {
  if (owns(a, p)) {
    Block *b = (Block *)p;
    size_t c = class_of(n);
    b->next = a->free[c];
    a->free[c] = b;
  } else {
    free(p);
  }
}

/* lua_Alloc.  With ptr NULL, osize is the kind of object, not a size.  A
** block that shrinks keeps its place if no smaller one can be had: Lua
** assumes shrinking never fails. */
static void *arena_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  Arena *a = (Arena *)ud;
  if (ptr == NULL) osize = 0;
  if (nsize == 0) {
    if (ptr != NULL) release(a, ptr, osize);
    return NULL;
  }
  if (ptr != NULL && !owns(a, ptr) && nsize > SMALL_MAX) return realloc(ptr, nsize);
  if (ptr != NULL && owns(a, ptr) && nsize <= SMALL_MAX && class_of(osize) == class_of(nsize))
    return ptr;
  void *q = nsize <= SMALL_MAX ? small_alloc(a, nsize) : NULL;
  if (q == NULL) q = malloc(nsize);
  if (q == NULL) return nsize <= osize ? ptr : NULL;
  if (ptr != NULL) {
    memcpy(q, ptr, osize < nsize ? osize : nsize);
    release(a, ptr, osize);
  }
  return q;
}

Arena *alloc_use(lua_State *L) {
#if defined(__SANITIZE_ADDRESS__)
  (void)L, (void)arena_alloc;   /* kept compiled; ASan must see every block in its malloc */
  return NULL;
#else
  Arena *a = (Arena *)calloc(1, sizeof *a);
  if (a == NULL) return NULL;
  void *base = mmap(NULL, REGION_SIZE, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {   /* a limit on address space: malloc alone */
    free(a);
    return NULL;
  }
  a->base = a->cur = a->open = (char *)base;
  a->end = a->base + REGION_SIZE;
  lua_setallocf(L, arena_alloc, a);
  return a;
#endif
}

void alloc_free(Arena *a) {
  if (a == NULL) return;
  munmap(a->base, REGION_SIZE);
  free(a);
}

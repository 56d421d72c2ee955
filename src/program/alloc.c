/*
** program/alloc.c - the program's Lua allocator.  Blocks of up to 1 KiB
** come from size classes 16 bytes apart, carved from one region of
** address space reserved at start, without malloc's header and
** rounding: Lua gives the size of every block it frees or resizes.  An
** idle connection of a server is made of a few such blocks (its
** coroutine's state, stack and call frames, its task, its socket): about
** 80 bytes less each than with malloc.  Larger blocks, and the blocks
** luaL_newstate made before the state used this allocator, are malloc's:
** the region's bounds tell them apart.  Not used under AddressSanitizer,
** which must see every block, nor where the region cannot be reserved.
**
** The region is cut into spans of 64 KiB, aligned, so a block's span
** follows from its address.  A span holds blocks of one class on its
** own free list, where it carves them a little at a time and where freed
** ones go back, with a count of the live ones.  Each class lists its
** spans that may have room (a span leaves when an allocation finds it
** full, and comes back with its next freed block).  A span whose last
** block is freed leaves its class for a pool of empty spans, which
** serves any class next.  So that memory goes back to the system after a
** spike (10,000 connections that close), the pool keeps at most as many
** empty spans as are in use (and 16 at least): the pages of the spans
** beyond that go back with MADV_DONTNEED.  The bound is the heap's
** ordinary swing: Lua's collector lets the heap grow to about twice what
** it keeps, so pages given back within that swing would be faulted in
** again at the next cycle.  MADV_FREE would cost less, but the kernel
** takes such pages back only under memory pressure, and until then they
** still count in the process's RSS.  Span descriptors sit outside the
** spans, in a table at the region's start, so that a span given back
** keeps no page resident.
**
** The region is reserved inaccessible (PROT_NONE), which the kernel does
** not count against its commit limit, and made readable and writable a
** step at a time as spans are first used: with vm.overcommit_memory=2 a
** writable reservation is charged in full (MAP_NORESERVE is ignored
** there), and again in every process a fork makes.  Pages become memory
** only when touched.  A span given back stays readable and writable, and
** charged: it is reused before the region grows, and touching it again
** cannot fail.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "program/program.h"

#define SMALL_MAX 1024                   /* larger blocks are malloc's */
#define GRAIN 16                         /* class size step; keeps 16-byte alignment */
#define NCLASSES (SMALL_MAX / GRAIN + 1)
#define REGION_SIZE ((size_t)16 << 30)   /* address space, not memory */
#define SPAN_SHIFT 16
#define SPAN_SIZE ((size_t)1 << SPAN_SHIFT)
#define NSPANS (REGION_SIZE / SPAN_SIZE)
#define TABLE_SIZE ((NSPANS * sizeof(Span) + SPAN_SIZE - 1) & ~(SPAN_SIZE - 1))   /* at the region's start */
#define TABLE_STEP ((size_t)64 << 10)    /* the table made accessible this much at a time */
#define OPEN_STEP ((size_t)1 << 20)      /* the spans made accessible this much at a time */
#define CARVE_STEP ((size_t)1024)        /* a span carves the blocks starting in this much at a time */
#define POOL_MIN 16                      /* empty spans the pool may always keep */

typedef struct Block { struct Block *next; } Block;

typedef struct Span {
  Block *free;                           /* its blocks free to take */
  struct Span *next, *prev;              /* in its class's list, or next in a pool */
  uint32_t carved;                       /* bytes carved from its start */
  uint16_t live;                         /* blocks in use */
  uint8_t cls;                           /* its blocks' class */
  uint8_t listed;                        /* in its class's list */
} Span;
_Static_assert(sizeof(Span) == 32, "a span's descriptor is found with a shift");

struct Arena {
  Span *has_room[NCLASSES];              /* spans of each class that may have room */
  Span *pool;                            /* empty spans, their pages resident */
  Span *given_back;                      /* empty spans, their pages the system's */
  size_t in_use, pooled;                 /* spans holding blocks; spans in pool */
  char *base, *end;                      /* the region; the table is at base */
  char *cur;                             /* the spans never carved */
  char *open, *table_open;               /* [TABLE_SIZE, open) and [base, table_open) are accessible */
};

static size_t class_of(size_t n) {
  return (n + GRAIN - 1) / GRAIN;
}

/* The span of a block of the region; NULL for one of malloc's. */
static Span *span_of(const Arena *a, const void *p) {
  uintptr_t at = (uintptr_t)p - (uintptr_t)a->base;
  return at < REGION_SIZE ? (Span *)a->base + (at >> SPAN_SHIFT) : NULL;
}

static char *span_start(const Arena *a, const Span *s) {
  return a->base + ((size_t)(s - (Span *)a->base) << SPAN_SHIFT);
}

/* Make [*open, upto) accessible, step bytes at a time; 0 when the kernel
** refuses (its commit limit). */
static int open_to(char **open, const char *upto, size_t step) {
  for (; *open < upto; *open += step)
    if (mprotect(*open, step, PROT_READ | PROT_WRITE) != 0) return 0;
  return 1;
}

/* A span never used, with its descriptor; NULL once the region is used up. */
static Span *span_new(Arena *a) {
  if ((size_t)(a->end - a->cur) < SPAN_SIZE) return NULL;
  Span *s = span_of(a, a->cur);
  if (!open_to(&a->table_open, (char *)(s + 1), TABLE_STEP) ||
      !open_to(&a->open, a->cur + SPAN_SIZE, OPEN_STEP)) return NULL;
  a->cur += SPAN_SIZE;
  return s;
}

/* An empty span for blocks of class c, first in its class's list. */
static Span *span_take(Arena *a, Span **list, size_t c) {
  Span *s = a->pool;
  if (s != NULL) {
    a->pool = s->next;
    a->pooled--;
  } else if ((s = a->given_back) != NULL) {
    a->given_back = s->next;
  } else if ((s = span_new(a)) == NULL) {
    return NULL;
  }
  s->free = NULL;
  s->carved = 0;
  s->live = 0;
  s->cls = (uint8_t)c;
  s->prev = NULL;
  s->next = NULL;
  s->listed = 1;
  *list = s;   /* the list was empty */
  a->in_use++;
  return s;
}

/* Pages of the pool's spans beyond its bound back to the system. */
static void pool_trim(Arena *a) {
  while (a->pooled > POOL_MIN && a->pooled > a->in_use) {
    Span *s = a->pool;
    a->pool = s->next;
    a->pooled--;
    madvise(span_start(a, s), SPAN_SIZE, MADV_DONTNEED);
    s->next = a->given_back;
    a->given_back = s;
  }
}

/* s, empty, left its class for the pool. */
static void span_drop(Arena *a, Span *s) {
  a->in_use--;
  s->next = a->pool;
  a->pool = s;
  a->pooled++;
  pool_trim(a);
}

static void unlink_span(Span **list, Span *s) {
  if (s->prev != NULL) s->prev->next = s->next;
  else *list = s->next;
  if (s->next != NULL) s->next->prev = s->prev;
  s->listed = 0;
}

static void push_span(Span **list, Span *s) {
  s->prev = NULL;
  s->next = *list;
  if (*list != NULL) (*list)->prev = s;
  *list = s;
  s->listed = 1;
}

/* Put on s's free list the blocks that start in the next CARVE_STEP of
** its uncarved part; 0 if no block fits.  Carving a step at a time keeps
** untouched pages untouched, and the blocks then come off the free list
** like any others. */
static int carve(Arena *a, Span *s) {
  size_t size = s->cls * GRAIN;
  char *start = span_start(a, s), *end = start + SPAN_SIZE;
  char *p = start + s->carved;
  char *step_end = p + CARVE_STEP - (size_t)(p - start) % CARVE_STEP;
  Block **link = &s->free;
  for (; p < step_end && p + size <= end; p += size) {
    *link = (Block *)p;
    link = &((Block *)p)->next;
  }
  *link = NULL;
  s->carved = (uint32_t)(p - start);
  return s->free != NULL;
}

/* small_alloc's way when the class's first span has no block free to
** take: carve some, or leave that span off the list, full, and try the
** next.  Kept out of line, as release_slow is, so that the common ways
** save no registers. */
static __attribute__((noinline)) void *small_alloc_slow(Arena *a, size_t c) {
  Span **list = &a->has_room[c];
  for (;;) {
    Span *s = *list;
    if (s == NULL && (s = span_take(a, list, c)) == NULL) return NULL;
    if (s->free != NULL || carve(a, s)) {
      Block *b = s->free;
      s->free = b->next;
      s->live++;
      return b;
    }
    unlink_span(list, s);
  }
}

/* NULL once the region is used up: malloc's then.  A span stays on its
** class's list until an allocation finds it full: a block that comes and
** goes on a span that is otherwise full does not move the span. */
static void *small_alloc(Arena *a, size_t n) {
  size_t c = class_of(n);
  Span *s = a->has_room[c];
  Block *b;
  if (s == NULL || (b = s->free) == NULL) return small_alloc_slow(a, c);
  s->free = b->next;
  s->live++;
  return b;
}

/* release's way when s is off its class's list (full) or b is its last
** live block. */
static __attribute__((noinline)) void release_slow(Arena *a, Span *s, Block *b) {
  Span **list = &a->has_room[s->cls];
  if (!s->listed) push_span(list, s);
  s->free = b;
  if (--s->live == 0) {
    unlink_span(list, s);
    span_drop(a, s);
  }
}

static void release(Arena *a, void *p) {
  Span *s = span_of(a, p);
  if (s == NULL) {
    free(p);
    return;
  }
  Block *b = (Block *)p;
  b->next = s->free;
  if (!s->listed || s->live == 1) {
    release_slow(a, s, b);
    return;
  }
  s->free = b;
  s->live--;
}

/* lua_Alloc.  With ptr NULL, osize is the kind of object, not a size.  A
** block that shrinks keeps its place if no smaller one can be had: Lua
** assumes shrinking never fails. */
static void *arena_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  Arena *a = (Arena *)ud;
  if (ptr == NULL) osize = 0;
  if (nsize == 0) {
    if (ptr != NULL) release(a, ptr);
    return NULL;
  }
  Span *s = ptr != NULL ? span_of(a, ptr) : NULL;   /* NULL: none, or malloc's */
  if (ptr != NULL && s == NULL && nsize > SMALL_MAX) return realloc(ptr, nsize);
  if (s != NULL && nsize <= SMALL_MAX && s->cls == class_of(nsize))
    return ptr;   /* the block's own class, not osize's: a caller's osize is not trusted */
  void *q = nsize <= SMALL_MAX ? small_alloc(a, nsize) : NULL;
  if (q == NULL) q = malloc(nsize);
  if (q == NULL) return nsize <= osize ? ptr : NULL;
  if (ptr != NULL) {
    memcpy(q, ptr, osize < nsize ? osize : nsize);
    release(a, ptr);
  }
  return q;
}

/* The region, inaccessible and aligned to a span; NULL if refused. */
static char *reserve_aligned(void) {
  char *p = mmap(NULL, REGION_SIZE + SPAN_SIZE, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return NULL;
  char *base = (char *)(((uintptr_t)p + SPAN_SIZE - 1) & ~(uintptr_t)(SPAN_SIZE - 1));
  if (base > p) munmap(p, (size_t)(base - p));
  if (p + SPAN_SIZE > base) munmap(base + REGION_SIZE, (size_t)(p + SPAN_SIZE - base));
  return base;
}

Arena *alloc_use(lua_State *L) {
#if defined(__SANITIZE_ADDRESS__)
  (void)L, (void)arena_alloc, (void)reserve_aligned;   /* kept compiled; ASan must see every block */
  return NULL;
#else
  Arena *a = (Arena *)calloc(1, sizeof *a);
  if (a == NULL) return NULL;
  char *base = reserve_aligned();
  if (base == NULL) {   /* a limit on address space: malloc alone */
    free(a);
    return NULL;
  }
  a->base = base;
  a->end = base + REGION_SIZE;
  a->table_open = base;
  a->cur = a->open = base + TABLE_SIZE;
  lua_setallocf(L, arena_alloc, a);
  return a;
#endif
}

void alloc_free(Arena *a) {
  if (a == NULL) return;
  munmap(a->base, REGION_SIZE);
  free(a);
}

/*
** core/pool.h - helper threads for blocking work without a descriptor
** (pool.c), for loop.c.
*/
#ifndef LSOCK_POOL_H
#define LSOCK_POOL_H

typedef struct Task Task;

/* ---- pool.c: helper threads for blocking work (for loop.c) --------- */
typedef struct Pool Pool;
Pool *pool_new(void);                 /* NULL with errno set on failure */
int pool_fd(Pool *p);                 /* eventfd, readable when jobs ended */
/* Run work(arg) on a helper thread for t; 0, or an errno (no memory, no
** thread could start). */
int pool_submit(Pool *p, Task *t, void (*work)(void *), void *arg);
/* pool_fd was readable: call ready(t) for each task whose job ended. */
void pool_collect(Pool *p, void (*ready)(Task *t));
void pool_free(Pool *p);              /* joins the workers first */

#endif

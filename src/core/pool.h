/*
** core/pool.h - helper threads for blocking work without a descriptor
** (pool.c), for loop.c.
*/
#ifndef LSOCK_POOL_H
#define LSOCK_POOL_H

typedef struct Task Task;

/* ---- pool.c: helper threads for blocking work (for loop.c) --------- */
typedef struct Pool Pool;

/* A job: work(arg) runs on a helper thread and touches arg alone; the
** rest is the loop's, carried to it when the job ended (t: whom the end
** concerns; keep: registry references holding t and arg alive). */
typedef struct PoolJob {
  void (*work)(void *arg);
  void *arg;
  Task *t;
  int keep[2];
} PoolJob;

Pool *pool_new(void);                 /* NULL with errno set on failure */
int pool_fd(Pool *p);                 /* eventfd, readable when jobs ended */
/* Queue a copy of job for a helper thread; 0, or an errno (no memory, no
** thread could start). */
int pool_submit(Pool *p, const PoolJob *job);
/* pool_fd was readable: call ended(job, ud) for each job that ended. */
void pool_collect(Pool *p, void (*ended)(PoolJob *job, void *ud), void *ud);
/* Before fork(2): let the jobs running end and stop the threads, so that
** none is inside the C library (a lookup holds its locks) when the
** process forks; jobs not started stay queued.  After it, in the parent,
** pool_resume starts threads for them again; in the child, pool_forked
** gives the pool an eventfd of its own first (the old one is shared). */
void pool_quiesce(Pool *p);
void pool_resume(Pool *p);
int pool_forked(Pool *p);             /* 0 or an errno */
/* Join the workers, then call ended(job, ud) for every job not collected
** (the loop is closing: nobody waits for them). */
void pool_free(Pool *p, void (*ended)(PoolJob *job, void *ud), void *ud);

#endif

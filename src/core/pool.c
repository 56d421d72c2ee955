/*
** pool.c - a few helper threads for work that blocks and has no
** descriptor to wait on (getaddrinfo, getnameinfo): wait_thread parks the
** task, a worker runs the job, then wakes the loop through an eventfd
** that the loop watches like any socket.
**
** Naive on purpose: at most POOL_MAX threads, started on demand and kept;
** jobs in FIFO order; one malloc per job (resolution is not a hot path).
** The jobs touch no Lua state.  Left out: cancelling a job (a waiter that
** gives up leaves it to end; the loop then drops its result).
*/
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/pool.h"

#define POOL_MAX 4   /* enough for lookups; a slow resolver queues the rest */

typedef struct Job {
  PoolJob job;
  struct Job *next;
} Job;

struct Pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  Job *todo, *todotail;     /* jobs not started (FIFO) */
  Job *done;                /* jobs finished, for the loop to collect */
  int nqueued, nidle, nthreads, stop;
  int efd;                  /* eventfd the workers write when a job ends */
  pthread_t th[POOL_MAX];
};

Pool *pool_new(void) {
  Pool *p = (Pool *)calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->efd < 0) {
    int err = errno;
    free(p);
    errno = err;
    return NULL;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  return p;
}

int pool_fd(Pool *p) {
  return p->efd;
}

/* With the lock held: wait for the next job (NULL once stopping; jobs
** not started then stay queued, for pool_resume or pool_free). */
static Job *pool_take(Pool *p) {
  while (p->todo == NULL && !p->stop) {
    p->nidle++;
    pthread_cond_wait(&p->cv, &p->mu);
    p->nidle--;
  }
  if (p->stop) return NULL;
  Job *j = p->todo;
  p->todo = j->next;
  if (p->todo == NULL) p->todotail = NULL;
  p->nqueued--;
  return j;
}

/* A worker: run jobs in order without the lock, hand them back through
** the done list and wake the loop through the eventfd. */
static void *pool_main(void *arg) {
  Pool *p = (Pool *)arg;
  uint64_t one = 1;
  Job *j;
  pthread_mutex_lock(&p->mu);
  while ((j = pool_take(p)) != NULL) {
    pthread_mutex_unlock(&p->mu);
    j->job.work(j->job.arg);
    pthread_mutex_lock(&p->mu);
    j->next = p->done;
    p->done = j;
    if (write(p->efd, &one, sizeof one) < 0) { /* counter full: already signalled */ }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Start a worker with every signal blocked, so that Ctrl-C is delivered to
** the loop's thread (and interrupts its epoll_wait), never to a worker. */
static int pool_grow(Pool *p) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(&p->th[p->nthreads], NULL, pool_main, p);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err == 0) p->nthreads++;
  return err;
}

/* Queue j; a new worker is started while jobs outnumber idle ones.  Fails
** only when no worker exists and none can be started. */
static int pool_queue(Pool *p, Job *j) {
  int err = 0;
  pthread_mutex_lock(&p->mu);
  if (p->nqueued >= p->nidle && p->nthreads < POOL_MAX) err = pool_grow(p);
  if (p->nthreads == 0) {
    pthread_mutex_unlock(&p->mu);
    return err;
  }
  j->next = NULL;
  if (p->todotail) p->todotail->next = j;
  else p->todo = j;
  p->todotail = j;
  p->nqueued++;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

int pool_submit(Pool *p, const PoolJob *job) {
  Job *j = (Job *)malloc(sizeof *j);
  if (j == NULL) return ENOMEM;
  j->job = *job;
  int err = pool_queue(p, j);
  if (err) free(j);
  return err;
}

/* Hand each job of the list j to ended, then free it. */
static void jobs_end(Job *j, void (*ended)(PoolJob *job, void *ud), void *ud) {
  while (j != NULL) {
    Job *next = j->next;
    if (ended != NULL) ended(&j->job, ud);
    free(j);
    j = next;
  }
}

/* Read the counter before taking the list, so that a job finished after
** the read signals again. */
void pool_collect(Pool *p, void (*ended)(PoolJob *job, void *ud), void *ud) {
  uint64_t n;
  if (read(p->efd, &n, sizeof n) < 0) { /* EAGAIN: nothing new */ }
  pthread_mutex_lock(&p->mu);
  Job *j = p->done;
  p->done = NULL;
  pthread_mutex_unlock(&p->mu);
  jobs_end(j, ended, ud);
}

/* Stop the workers once their current job ended and join them; jobs not
** started stay queued (pool_take leaves them when stopping). */
void pool_quiesce(Pool *p) {
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++) pthread_join(p->th[i], NULL);
  p->nthreads = 0;
}

/* A worker for each queued job, up to POOL_MAX (none starting: they wait
** for the next submit). */
void pool_resume(Pool *p) {
  pthread_mutex_lock(&p->mu);
  p->stop = 0;
  while (p->nthreads < p->nqueued && p->nthreads < POOL_MAX && pool_grow(p) == 0) {}
  pthread_mutex_unlock(&p->mu);
}

/* In the child: no thread is left and none held the lock at the fork
** (pool_quiesce), so the lists are whole; only the eventfd, shared with
** the parent, must be our own. */
int pool_forked(Pool *p) {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return errno;
  close(p->efd);
  p->efd = fd;
  uint64_t one = 1;
  if (p->done != NULL && write(fd, &one, sizeof one) < 0) { /* cannot fail: new counter */ }
  pool_resume(p);
  return 0;
}

/* A job already running finishes first: its argument lives in memory Lua
** frees only after every finalizer (the loop's __gc calls us) has run. */
void pool_free(Pool *p, void (*ended)(PoolJob *job, void *ud), void *ud) {
  if (p == NULL) return;
  pool_quiesce(p);
  jobs_end(p->todo, ended, ud);   /* never started */
  jobs_end(p->done, ended, ud);   /* finished, not collected */
  close(p->efd);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

/*
** pool.c - a few helper threads for work that blocks and has no
** descriptor to wait on (getaddrinfo, getnameinfo): wait_thread parks the
** task, a worker runs the job, then wakes the loop through an eventfd
** that the loop watches like any socket.
**
** Naive on purpose: at most POOL_MAX threads, started on demand and kept;
** jobs in FIFO order; one malloc per job (resolution is not a hot path).
** The jobs touch no Lua state.  Left out: cancelling a job (a task
** waiting for one cannot be woken early).
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
  Task *t;                  /* the task to wake */
  void (*work)(void *);
  void *arg;
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
** not started then are dropped, the loop is closing). */
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
    j->work(j->arg);
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

int pool_submit(Pool *p, Task *t, void (*work)(void *), void *arg) {
  Job *j = (Job *)malloc(sizeof *j);
  if (j == NULL) return ENOMEM;
  j->t = t, j->work = work, j->arg = arg;
  int err = pool_queue(p, j);
  if (err) free(j);
  return err;
}

/* Read the counter before taking the list, so that a job finished after
** the read signals again. */
void pool_collect(Pool *p, void (*ready)(Task *t)) {
  uint64_t n;
  if (read(p->efd, &n, sizeof n) < 0) { /* EAGAIN: nothing new */ }
  pthread_mutex_lock(&p->mu);
  Job *j = p->done;
  p->done = NULL;
  pthread_mutex_unlock(&p->mu);
  while (j != NULL) {
    Job *next = j->next;
    ready(j->t);
    free(j);
    j = next;
  }
}

static void jobs_free(Job *j) {
  while (j != NULL) {
    Job *next = j->next;
    free(j);
    j = next;
  }
}

/* A job already running finishes first: its argument lives in memory Lua
** frees only after every finalizer (the loop's __gc calls us) has run. */
void pool_free(Pool *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++) pthread_join(p->th[i], NULL);
  jobs_free(p->todo);   /* never started */
  jobs_free(p->done);   /* finished, not collected */
  close(p->efd);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

/*
** clock.c - the monotonic clock and deadlines, the bottom of the core:
** every wait computes its deadline once, as an absolute CLOCK_MONOTONIC
** time in seconds (a double), and converts what is left of it to
** milliseconds for poll and epoll_wait only when it sleeps.
*/
#include <math.h>
#include <time.h>

#include "core/clock.h"

double clock_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double clock_deadline(double timeout) {
  if (timeout < 0) return -1;
  if (timeout == 0) return 0;
  return clock_now() + timeout;
}

/* Rounded up, so that a wait never ends before its deadline and then
** spins on a zero timeout (see cqueues' regress/63-timeouts-early.lua). */
int clock_ms(double deadline) {
  if (deadline < 0) return -1;
  double ms = ceil((deadline - clock_now()) * 1000.0);
  if (ms <= 0) return 0;
  return ms > 86400000.0 ? 86400000 : (int)ms;  /* re-armed after a day */
}

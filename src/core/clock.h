/*
** core/clock.h - the monotonic clock and deadlines, the bottom of the
** core (clock.c).
*/
#ifndef LSOCK_CLOCK_H
#define LSOCK_CLOCK_H

/* ---- clock.c: the monotonic clock, deadlines ----------------------- */
double clock_now(void);                     /* monotonic seconds */
/* Absolute deadline for a timeout: -1 for none (t < 0), 0 for
** non-blocking (t == 0), else now + t. */
double clock_deadline(double timeout);
/* Milliseconds from now until deadline, rounded up, for poll/epoll:
** -1 for no deadline. */
int clock_ms(double deadline);

#endif

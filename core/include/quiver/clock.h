/* The monotonic clock every layer times with (durations, deadlines, rates). */
#ifndef QUIVER_CLOCK_H
#define QUIVER_CLOCK_H

#include <pthread.h>
#include <stdint.h>

#include "quiver/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds on CLOCK_MONOTONIC (unaffected by changes of the wall clock). */
QV_API double qv_monotonic_s(void);

/* A condition variable whose timed waits count on CLOCK_MONOTONIC (pthread_cond_init). */
QV_API int qv_cond_init_monotonic(pthread_cond_t *cv);
/* Waits on cv (mu held) for at most ms milliseconds of CLOCK_MONOTONIC: pthread_cond_timedwait's
 * result. cv must come from qv_cond_init_monotonic. */
QV_API int qv_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

#ifdef __cplusplus
}
#endif

#endif

/* The monotonic clock every layer times with (durations, deadlines, rates). */
#ifndef QUIVER_CLOCK_H
#define QUIVER_CLOCK_H

#include "quiver/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds on CLOCK_MONOTONIC (unaffected by changes of the wall clock). */
QV_API double qv_monotonic_s(void);

#ifdef __cplusplus
}
#endif

#endif

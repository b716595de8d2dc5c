/* Seeded synthetic embeddings: a mixture of Gaussians, reproducible on every machine (splitmix64
 * + Box-Muller), for demos, tests and benchmarks when no real data set is at hand. */
#ifndef QUIVER_SYNTH_H
#define QUIVER_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills out (n x d floats): `clusters` centres drawn from N(0, 4^2) per component, each row a
 * random centre plus N(0, 3^2) noise. The same (seed, n, d, clusters) always gives the same
 * bytes; rows [0, n) of a call with larger n are the same as those of a call with smaller n only
 * when every argument but n is equal. clusters 0 is treated as 1. Returns 0, or -1 when out of
 * memory. */
QV_API int qv_synth_mixture(float *out, size_t n, size_t d, size_t clusters, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif

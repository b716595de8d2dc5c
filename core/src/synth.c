#include "quiver/synth.h"

#include <math.h>
#include <stdlib.h>

static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double next_normal(uint64_t *s) { /* Box-Muller */
  double u1 = ((next_u64(s) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
  double u2 = (next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int qv_synth_mixture(float *out, size_t n, size_t d, size_t clusters, uint64_t seed) {
  if (clusters == 0)
    clusters = 1;
  float *centers = malloc(clusters * d * sizeof(float));
  if (centers == NULL)
    return -1;
  uint64_t s = seed;
  for (size_t i = 0; i < clusters * d; i++)
    centers[i] = (float)(next_normal(&s) * 4.0);
  for (size_t r = 0; r < n; r++) {
    const float *c = centers + (next_u64(&s) % clusters) * d;
    for (size_t t = 0; t < d; t++)
      out[r * d + t] = c[t] + (float)(next_normal(&s) * 3.0);
  }
  free(centers);
  return 0;
}

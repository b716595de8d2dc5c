/* CPU reference top-k selection: one bounded max-heap (of the worst kept candidate) per query. */
#include <math.h>
#include <stdlib.h>

#include "quiver/kernels.h"
#include "twins.h"

void qv_topk_init(size_t nq, size_t k, int larger_is_better, float *scores, int64_t *ids) {
  float empty = larger_is_better ? -INFINITY : INFINITY;
  for (size_t i = 0; i < nq * k; i++) {
    scores[i] = empty;
    ids[i] = -1;
  }
}

void qv_topk_push_cpu(size_t nq, size_t k, int larger, const float *block, size_t n, size_t ld,
                      const int64_t *ids_in, int64_t id0, float *scores, int64_t *ids) {
  for (size_t q = 0; q < nq; q++) {
    float *hs = scores + q * k;
    int64_t *hi = ids + q * k;
    const float *b = block + q * ld;
    for (size_t j = 0; j < n; j++) {
      float v = b[j];
      int64_t id = ids_in ? ids_in[j] : id0 + (int64_t)j;
      if (id < 0 || isnan(v))
        continue;
      if (!qv__ranks_worse(larger, hs[0], hi[0], v, id))
        continue; /* not better than the worst kept */
      hs[0] = v;
      hi[0] = id;
      qv__heap_sift_down(k, larger, hs, hi, 0);
    }
  }
}

void qv_topk_finish(size_t nq, size_t k, int larger, float *scores, int64_t *ids) {
  for (size_t q = 0; q < nq; q++) {
    float *hs = scores + q * k;
    int64_t *hi = ids + q * k;
    /* Heap sort: repeatedly move the worst to the end. */
    for (size_t n = k; n > 1; n--) {
      float ts = hs[0];
      hs[0] = hs[n - 1];
      hs[n - 1] = ts;
      int64_t ti = hi[0];
      hi[0] = hi[n - 1];
      hi[n - 1] = ti;
      qv__heap_sift_down(n - 1, larger, hs, hi, 0);
    }
    float empty = larger ? -INFINITY : INFINITY;
    for (size_t j = 0; j < k; j++)
      if (hi[j] < 0)
        hs[j] = empty;
  }
}

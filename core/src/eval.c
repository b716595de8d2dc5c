#include "quiver/eval.h"

double qv_recall_at_k(const int64_t *ids, const int64_t *gt, size_t gk, size_t n, size_t k) {
  size_t hits = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t a = 0; a < k; a++)
      for (size_t g = 0; g < k; g++)
        if (ids[i * k + a] >= 0 && ids[i * k + a] == gt[i * gk + g]) {
          hits++;
          break;
        }
  return n * k > 0 ? (double)hits / (double)(n * k) : 0.0;
}

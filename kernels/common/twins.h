/* The logic a CPU kernel and its CUDA twin share, written once: each is compiled into both
 * (static inline host functions in C, device functions under nvcc), so the twins rank, keep and
 * filter candidates identically — the property tests/kernels checks. */
#ifndef QUIVER_KERNELS_TWINS_H
#define QUIVER_KERNELS_TWINS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define QV_TWIN static __device__ inline
#else
#define QV_TWIN static inline
#endif

/* 1 when (sa, ia) ranks worse than (sb, ib): the lower score when larger is better, else the
 * higher; ties by the larger id. Empty slots (id -1) rank worst of all. */
QV_TWIN int qv__ranks_worse(int larger, float sa, int64_t ia, float sb, int64_t ib) {
  if (ia < 0 || ib < 0)
    return ia < 0 && ib >= 0;
  if (sa != sb)
    return larger ? sa < sb : sa > sb;
  return ia > ib;
}

/* Sifts element i down in a k-element heap whose root is its worst element. */
QV_TWIN void qv__heap_sift_down(size_t k, int larger, float *s, int64_t *id, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, w = i;
    if (l < k && qv__ranks_worse(larger, s[l], id[l], s[w], id[w]))
      w = l;
    if (r < k && qv__ranks_worse(larger, s[r], id[r], s[w], id[w]))
      w = r;
    if (w == i)
      return;
    float ts = s[i];
    s[i] = s[w];
    s[w] = ts;
    int64_t ti = id[i];
    id[i] = id[w];
    id[w] = ti;
    i = w;
  }
}

/* 1 when the ascending list holds id (binary search). */
QV_TWIN int qv__sorted_contains(const int64_t *list, size_t n, int64_t id) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (list[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && list[lo] == id;
}

#endif

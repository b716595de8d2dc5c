/* Merging shards' answers: see quiver/merge.h. */
#include "quiver/merge.h"

#include <math.h>
#include <stdlib.h>

typedef struct cand {
  float s;
  int64_t id;
} cand;

static int by_rank_larger(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->s != y->s)
    return x->s > y->s ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

static int by_rank_smaller(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->s != y->s)
    return x->s < y->s ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* By id, then by rank: the best answer for an id comes first among its copies. */
static int by_id_larger(const void *a, const void *b) {
  const cand *x = a, *y = b;
  return x->id != y->id ? (x->id > y->id) - (x->id < y->id) : by_rank_larger(a, b);
}

static int by_id_smaller(const void *a, const void *b) {
  const cand *x = a, *y = b;
  return x->id != y->id ? (x->id > y->id) - (x->id < y->id) : by_rank_smaller(a, b);
}

qv_status qv_merge_topk(qv_metric metric, size_t nq, size_t k, size_t nlists, size_t k_in,
                        const float *const *scores, const int64_t *const *ids, float *out_scores,
                        int64_t *out_ids, qv_error *err) {
  if (k == 0 || k_in == 0 || (nlists > 0 && (scores == NULL || ids == NULL)))
    return qv_error_set(err, QV_EINVAL, "merge: k and k_in must be >= 1 and the lists given");
  for (size_t l = 0; l < nlists; l++)
    if (scores[l] == NULL || ids[l] == NULL)
      return qv_error_set(err, QV_EINVAL, "merge: list %zu is NULL", l);
  const int larger = qv_metric_larger_is_better(metric);
  const float empty = larger ? -INFINITY : INFINITY;
  cand *c = malloc((nlists * k_in > 0 ? nlists * k_in : 1) * sizeof *c);
  if (c == NULL)
    return qv_error_set(err, QV_ENOMEM, "merge: out of memory for %zu candidates", nlists * k_in);
  for (size_t q = 0; q < nq; q++) {
    size_t n = 0;
    for (size_t l = 0; l < nlists; l++)
      for (size_t j = 0; j < k_in; j++) {
        const int64_t id = ids[l][q * k_in + j];
        const float s = scores[l][q * k_in + j];
        if (id >= 0 && !isnan(s))
          c[n++] = (cand){s, id};
      }
    /* An id answered twice keeps its better answer, then the best k by rank. */
    qsort(c, n, sizeof *c, larger ? by_id_larger : by_id_smaller);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
      if (u == 0 || c[i].id != c[u - 1].id)
        c[u++] = c[i];
    qsort(c, u, sizeof *c, larger ? by_rank_larger : by_rank_smaller);
    size_t w = 0;
    for (; w < k && w < u; w++) {
      out_scores[q * k + w] = c[w].s;
      out_ids[q * k + w] = c[w].id;
    }
    for (; w < k; w++) {
      out_scores[q * k + w] = empty;
      out_ids[q * k + w] = -1;
    }
  }
  free(c);
  return QV_OK;
}

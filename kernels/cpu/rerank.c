/* CPU reference of the rerank stage (see quiver/rerank.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quiver/kernels.h"
#include "quiver/rerank.h"
#include "twins.h"

int qv_sorted_contains(const int64_t *list, size_t n, int64_t id) {
  return qv__sorted_contains(list, n, id);
}

static int sorted(const int64_t *l, size_t n) {
  for (size_t i = 1; i < n; i++)
    if (l[i - 1] > l[i])
      return 0;
  return 1;
}

static float dot(const float *a, const float *b, size_t d) {
  float s = 0.0f;
  for (size_t t = 0; t < d; t++)
    s += a[t] * b[t];
  return s;
}

static float l2sq(const float *a, const float *b, size_t d) {
  float s = 0.0f;
  for (size_t t = 0; t < d; t++) {
    float v = a[t] - b[t];
    s += v * v;
  }
  return s;
}

qv_status qv_rerank_check(const float *queries, size_t n, size_t d, const int64_t *cand_ids,
                          const float *cand_scores, const float *cand_vecs, const float *cand_feats,
                          size_t kc, const qv_rerank_params *p, const float *out_scores,
                          const int64_t *out_ids, qv_error *err) {
  if (p == NULL || p->k == 0)
    return qv_error_set(err, QV_EINVAL, "rerank: k must be >= 1");
  if (n > 0 && (queries == NULL || out_scores == NULL || out_ids == NULL ||
                (kc > 0 && (cand_ids == NULL || cand_vecs == NULL))))
    return qv_error_set(err, QV_EINVAL, "rerank: NULL buffer");
  if (d == 0)
    return qv_error_set(err, QV_EINVAL, "rerank: dimension must be > 0");
  if (!p->refine && n > 0 && kc > 0 && cand_scores == NULL)
    return qv_error_set(err, QV_EINVAL, "rerank: refine = 0 needs the candidates' index scores");
  if (p->n_features > QV_MAX_FEATURES)
    return qv_error_set(err, QV_EINVAL, "rerank: %zu features exceed the limit %d", p->n_features,
                        QV_MAX_FEATURES);
  if (p->n_features > 0 && (p->weights == NULL || (kc > 0 && cand_feats == NULL)))
    return qv_error_set(err, QV_EINVAL,
                        "rerank: %zu features need 1 + %zu weights and the candidates' features",
                        p->n_features, p->n_features);
  if (p->weights != NULL)
    for (size_t f = 0; f <= p->n_features; f++)
      if (!isfinite(p->weights[f]))
        return qv_error_set(err, QV_EINVAL, "rerank: weight %zu is NaN or infinite", f);
  if (!(p->mmr_lambda >= 0.0f && p->mmr_lambda <= 1.0f))
    return qv_error_set(err, QV_EINVAL, "rerank: mmr_lambda %g is outside [0, 1]",
                        (double)p->mmr_lambda);
  if ((p->allow && !sorted(p->allow, p->n_allow)) || (p->deny && !sorted(p->deny, p->n_deny)))
    return qv_error_set(err, QV_EINVAL, "rerank: allow/deny lists must be sorted ascending");

  return QV_OK;
}

typedef struct id_pos {
  int64_t id;
  size_t pos;
} id_pos;

static int by_id_pos(const void *a, const void *b) {
  const id_pos *x = a, *y = b;
  if (x->id != y->id)
    return x->id < y->id ? -1 : 1;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Clears live[j] of every candidate whose id already appeared live earlier in the list (e.g.
 * merged shards): O(kc log kc). */
static void drop_repeats(const int64_t *ids, size_t kc, unsigned char *live, id_pos *tmp) {
  size_t m = 0;
  for (size_t j = 0; j < kc; j++)
    if (live[j])
      tmp[m++] = (id_pos){ids[j], j};
  qsort(tmp, m, sizeof *tmp, by_id_pos);
  for (size_t t = 1; t < m; t++)
    if (tmp[t].id == tmp[t - 1].id)
      live[tmp[t].pos] = 0;
}

qv_status qv_rerank_cpu(qv_metric metric, const float *queries, size_t n, size_t d,
                        const int64_t *cand_ids, const float *cand_scores, const float *cand_vecs,
                        const float *cand_feats, size_t kc, const qv_rerank_params *p,
                        float *out_scores, int64_t *out_ids, qv_error *err) {
  qv_status st = qv_rerank_check(queries, n, d, cand_ids, cand_scores, cand_vecs, cand_feats, kc, p,
                                 out_scores, out_ids, err);
  if (st != QV_OK)
    return st;
  const size_t k = p->k;
  const int blended = p->weights != NULL, mmr = p->mmr_lambda > 0.0f;
  /* Plain refine keeps the metric's convention; anything else ranks larger-first. */
  const int larger = blended || mmr || qv_metric_larger_is_better(metric);
  float *score = malloc((kc ? kc : 1) * sizeof *score);
  unsigned char *live = malloc(kc ? kc : 1);
  float *maxsim = malloc((kc ? kc : 1) * sizeof *maxsim);
  id_pos *tmp = malloc((kc ? kc : 1) * sizeof *tmp);
  if (score == NULL || live == NULL || maxsim == NULL || tmp == NULL) {
    free(score);
    free(live);
    free(maxsim);
    free(tmp);
    return qv_error_set(err, QV_ENOMEM, "rerank: out of memory for %zu candidates", kc);
  }
  for (size_t i = 0; i < n; i++) {
    const float *q = queries + i * d;
    const int64_t *ids = cand_ids + i * kc;
    float *os = out_scores + i * k;
    int64_t *oi = out_ids + i * k;
    for (size_t j = 0; j < kc; j++) {
      int64_t id = ids[j];
      live[j] = id >= 0 && !(p->deny && qv_sorted_contains(p->deny, p->n_deny, id)) &&
                !(p->allow && !qv_sorted_contains(p->allow, p->n_allow, id));
    }
    drop_repeats(ids, kc, live, tmp); /* a repeated candidate counts once */
    for (size_t j = 0; j < kc; j++) {
      if (!live[j])
        continue;
      const float *x = cand_vecs + (i * kc + j) * d;
      float sim;
      if (p->refine)
        sim = metric == QV_METRIC_L2 ? -l2sq(q, x, d) : dot(q, x, d);
      else
        sim = metric == QV_METRIC_L2 ? -cand_scores[i * kc + j] : cand_scores[i * kc + j];
      if (blended) {
        float s = p->weights[0] * sim;
        const float *ft = cand_feats ? cand_feats + (i * kc + j) * p->n_features : NULL;
        for (size_t f = 0; f < p->n_features; f++)
          s += p->weights[1 + f] * ft[f];
        sim = s;
      }
      score[j] = sim;
    }
    if (!mmr) {
      /* Plain top-k. For l2 without blending, report the distance itself. */
      qv_topk_init(1, k, larger, os, oi);
      for (size_t j = 0; j < kc; j++) {
        if (!live[j])
          continue;
        float s = (!larger && metric == QV_METRIC_L2) ? -score[j] : score[j];
        qv_topk_push_cpu(1, k, larger, &s, 1, 1, &ids[j], 0, os, oi);
      }
      qv_topk_finish(1, k, larger, os, oi);
      continue;
    }
    /* MMR: greedy picks. */
    const float lambda = p->mmr_lambda;
    for (size_t j = 0; j < kc; j++)
      maxsim[j] = -INFINITY;
    size_t picked = 0;
    for (; picked < k; picked++) {
      size_t best = kc;
      float bv = -INFINITY;
      for (size_t j = 0; j < kc; j++) {
        if (!live[j])
          continue;
        float v = picked == 0 ? score[j] : lambda * score[j] - (1.0f - lambda) * maxsim[j];
        if (best == kc || v > bv || (v == bv && ids[j] < ids[best])) {
          best = j;
          bv = v;
        }
      }
      if (best == kc)
        break;
      live[best] = 0;
      os[picked] = score[best];
      oi[picked] = ids[best];
      const float *xb = cand_vecs + (i * kc + best) * d;
      for (size_t j = 0; j < kc; j++) {
        if (!live[j])
          continue;
        const float *x = cand_vecs + (i * kc + j) * d;
        float s = metric == QV_METRIC_L2 ? -l2sq(x, xb, d) : dot(x, xb, d);
        if (s > maxsim[j])
          maxsim[j] = s;
      }
    }
    for (; picked < k; picked++) {
      os[picked] = -INFINITY;
      oi[picked] = -1;
    }
  }
  free(score);
  free(live);
  free(maxsim);
  free(tmp);
  return QV_OK;
}

/* The rerank stage: what every query's candidates go through before its top-k goes back.
 *
 * Input per query i (n queries, kc candidates each, row-major):
 *   cand_ids[i*kc + j]     candidate id, -1 = empty slot (skipped)
 *   cand_vecs[(i*kc+j)*d]  the candidate's full-precision vector (gathered by the caller)
 *   cand_feats[(i*kc+j)*F] its item features (NULL when F == 0)
 * Steps, in order:
 *   1. filters: ids in `deny` are dropped; when `allow` is given, only ids in it stay (both
 *      sorted ascending; tombstones go in `deny`)
 *   2. exact re-score: sim = -||q - x||^2 (l2) or <q, x> (ip, cosine: unit vectors expected);
 *      with refine = 0 the index's own scores (cand_scores, same convention) are used instead
 *   3. blend: score = w[0] * sim + sum_f w[1+f] * feature_f   (no weights: score = sim)
 *   4. optional diversity by maximal marginal relevance: greedily pick
 *        argmax  lambda * score(c) - (1 - lambda) * max_{s picked} <x_c, x_s>
 *      (cosine/ip: inner product; l2: -squared distance), lambda in (0, 1]; 0 turns MMR off
 *   5. the final top-k, best first, ties by smaller id, padded with id -1.
 * Output scores: with no weights and no MMR, the metric's own convention (l2: squared distance,
 * ascending; ip/cosine: similarity, descending), so a plain refine changes nothing for callers.
 * With weights, the blended score (larger is better, descending). With MMR, the blended (or
 * plain) score of each pick, in pick order.
 *
 * This header is C11 and needs no CUDA header. Every function is reentrant. */
#ifndef QUIVER_RERANK_H
#define QUIVER_RERANK_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/rerank_params.h"
#include "quiver/status.h"
#include "quiver/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* qv_rerank_params, QV_MAX_FEATURES and qv_rerank_params_init: quiver/rerank_params.h (core/). */

/* Runs the stage on the CPU. out_scores and out_ids hold n * p->k.
 * Returns QV_OK; QV_EINVAL (NULL buffers, k 0, too many features, weights missing for features,
 * lambda outside [0, 1], NaN weight, unsorted allow/deny list); QV_ENOMEM. */
QV_API qv_status qv_rerank_cpu(qv_metric metric, const float *queries, size_t n, size_t d,
                               const int64_t *cand_ids, const float *cand_scores,
                               const float *cand_vecs, const float *cand_feats, size_t kc,
                               const qv_rerank_params *p, float *out_scores, int64_t *out_ids,
                               qv_error *err);

/* The CUDA twin of qv_rerank_cpu: the same contract and results (scores equal within float
 * rounding; ids equal except between candidates whose scores tie within rounding). Host pointers,
 * copied through the current device. Returns QV_EUNSUPPORTED when built without CUDA,
 * QV_EUNAVAILABLE when no device is present, QV_ENOMEM when device memory runs out, and the
 * CPU twin's QV_EINVAL cases. */
QV_API qv_status qv_rerank_cuda(qv_metric metric, const float *queries, size_t n, size_t d,
                                const int64_t *cand_ids, const float *cand_scores,
                                const float *cand_vecs, const float *cand_feats, size_t kc,
                                const qv_rerank_params *p, float *out_scores, int64_t *out_ids,
                                qv_error *err);

/* Checks the parameters as both twins do. QV_OK or QV_EINVAL. */
QV_API qv_status qv_rerank_check(const float *queries, size_t n, size_t d, const int64_t *cand_ids,
                                 const float *cand_scores, const float *cand_vecs,
                                 const float *cand_feats, size_t kc, const qv_rerank_params *p,
                                 const float *out_scores, const int64_t *out_ids, qv_error *err);

/* 1 when id is in the sorted list. */
QV_API int qv_sorted_contains(const int64_t *list, size_t n, int64_t id);

#ifdef __cplusplus
}
#endif

#endif /* QUIVER_RERANK_H */

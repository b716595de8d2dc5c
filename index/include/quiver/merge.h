/* Merging the answers of several shards into one answer, as one collection holding all their
 * items would rank it (the router of a fleet: each shard answers its own top-k' of a query). */
#ifndef QUIVER_MERGE_H
#define QUIVER_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/status.h"
#include "quiver/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* For each of nq queries, the best k of the nlists answers: list l holds nq x k_in results,
 * row-major (scores[l], ids[l]; id -1 = an empty slot, as a search pads). Ranked by score for the
 * metric (smaller first for l2, larger for ip and cosine), equal scores by the smaller id, the
 * rule a single collection's exact search uses; an id in two lists is kept once, at its better
 * rank (a shard moving an item can answer it twice). Output nq x k, padded like a search (id -1,
 * score +inf for l2, -inf otherwise). Returns QV_OK; QV_EINVAL (k or k_in 0, a NULL list);
 * QV_ENOMEM. */
QV_API qv_status qv_merge_topk(qv_metric metric, size_t nq, size_t k, size_t nlists, size_t k_in,
                               const float *const *scores, const int64_t *const *ids,
                               float *out_scores, int64_t *out_ids, qv_error *err);

#ifdef __cplusplus
}
#endif

#endif

/* Measuring answers against ground truth, for the tools that report recall (the CLI, bench/). */
#ifndef QUIVER_EVAL_H
#define QUIVER_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* recall@k: the share of the n x k returned ids (row-major, -1 = none) found among the first k
 * of the same query's ground-truth row (gt: n rows of gk >= k ids). 0 when n or k is 0. */
QV_API double qv_recall_at_k(const int64_t *ids, const int64_t *gt, size_t gk, size_t n, size_t k);

#ifdef __cplusplus
}
#endif

#endif

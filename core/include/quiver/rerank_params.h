/* The options of the rerank stage (what each query's candidates go through: filters, exact
 * re-score, feature blend, diversity; quiver/rerank.h of kernels/ has the stage itself). The type
 * lives in core/ because every layer passes it: server/ fills it from a request, index/ hands it
 * to kernels/ with the candidates it gathered, and server/ must not include kernels/ headers. */
#ifndef QUIVER_RERANK_PARAMS_H
#define QUIVER_RERANK_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QV_MAX_FEATURES 64

typedef struct qv_rerank_params {
  size_t k;             /* results per query, >= 1 */
  int refine;           /* 1 (default): exact re-score from cand_vecs; 0: keep cand_scores */
  const float *weights; /* NULL, or 1 + n_features weights */
  size_t n_features;    /* F, 0 .. QV_MAX_FEATURES */
  float mmr_lambda;     /* 0 = off, else (0, 1] */
  const int64_t *allow; /* sorted ascending, or NULL = everything allowed */
  size_t n_allow;
  const int64_t *deny; /* sorted ascending, or NULL */
  size_t n_deny;
} qv_rerank_params;

/* Fills defaults: k 10, refine on, no weights, no MMR, no filters. */
QV_API void qv_rerank_params_init(qv_rerank_params *p);

#ifdef __cplusplus
}
#endif

#endif

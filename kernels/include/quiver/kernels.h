/* Compute kernels behind one plain C interface: a CPU implementation of every contract (the
 * reference that tests trust) and, when built with CUDA, a GPU twin of the same contract.
 *
 * This header is C11 and needs no CUDA header: device state stays inside kernels/. All pointers
 * here are host pointers and are borrowed for the duration of the call. Every function is
 * reentrant: it keeps no state between calls, so any number of threads may call at once.
 *
 * Score convention (see quiver/types.h): for QV_METRIC_L2 a score is the squared L2 distance and
 * smaller ranks first; for QV_METRIC_IP and QV_METRIC_COSINE it is the inner product and larger
 * ranks first (cosine expects unit-length inputs: normalise with qv_normalize_cpu first).
 */
#ifndef QUIVER_KERNELS_H
#define QUIVER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/status.h"
#include "quiver/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- distances -------------------------------------------------------------------------- */

/* out[i * nb + j] = score(queries[i], base[j]) for i < nq, j < nb; rows are d floats, row-major.
 * Returns QV_OK; QV_EINVAL for NULL pointers with a non-zero size or d == 0. */
QV_API qv_status qv_distances_cpu(qv_metric metric, const float *queries, size_t nq,
                                  const float *base, size_t nb, size_t d, float *out,
                                  qv_error *err);

/* The CUDA twin of qv_distances_cpu (same contract, results equal within float rounding). Copies
 * in and out through the current device. Returns QV_EUNSUPPORTED when built without CUDA,
 * QV_EUNAVAILABLE when no device is present, QV_ENOMEM when device memory runs out. */
QV_API qv_status qv_distances_cuda(qv_metric metric, const float *queries, size_t nq,
                                   const float *base, size_t nb, size_t d, float *out,
                                   qv_error *err);

/* Number of usable CUDA devices: 0 when built without CUDA or when none is present. */
QV_API int qv_cuda_device_count(void);

/* Free and total memory of CUDA device `dev`. QV_OK; QV_EUNAVAILABLE (no such device or no CUDA
 * in this build). */
QV_API qv_status qv_cuda_mem_info(int dev, size_t *free_bytes, size_t *total_bytes, qv_error *err);

/* 1 when this build compiled the CUDA kernels (whether or not a device is present). */
QV_API int qv_kernels_have_cuda(void);

/* ---- vector helpers ---------------------------------------------------------------------- */

/* Normalises n rows of d floats to unit L2 length, in place. A row of norm 0 (or not finite) is
 * left as it is and makes the call return QV_EINVAL naming the first such row; rows before it
 * are already normalised. */
QV_API qv_status qv_normalize_cpu(float *x, size_t n, size_t d, qv_error *err);

/* Returns the index of the first element of x[0 .. n) that is NaN or infinite, or -1 if none. */
QV_API int64_t qv_find_nonfinite(const float *x, size_t n);

/* The largest squared L2 norm a stored or query vector may have: FLT_MAX / 4, so that no squared
 * L2 distance (at most (|x| + |y|)^2) or inner product between two such vectors overflows float
 * (a finite vector past it made FAISS's k-means crash). */
#define QV_MAX_SQNORM 8.5070587e37

/* Checks n rows of d floats before they are stored or searched: every component finite, every
 * squared norm (summed in double) at most QV_MAX_SQNORM, and, with nonzero set (cosine), no row
 * of norm 0. `what` names a row in the message ("row", "query"). QV_OK, or QV_EINVAL naming the
 * first bad row (and component) and what to do. */
QV_API qv_status qv_check_vectors(const float *x, size_t n, size_t d, int nonzero, const char *what,
                                  qv_error *err);

/* ---- top-k selection --------------------------------------------------------------------- */

/* Running top-k over many blocks of candidates, per query.
 *
 * Lifecycle: qv_topk_init fills the nq * k output arrays with empty slots; each
 * qv_topk_push_cpu offers a block of candidates; qv_topk_finish sorts each query's k results
 * best first. Between init and finish the arrays hold a per-query heap (not sorted).
 * Ranking: by score (see larger_is_better), then by the smaller id on equal scores, so the result
 * is deterministic whatever the block order. Empty slots finish as id -1 and score +INF (smaller
 * is better) or -INF (larger is better). k must be >= 1. */
QV_API void qv_topk_init(size_t nq, size_t k, int larger_is_better, float *scores, int64_t *ids);

/* Offers candidates: for query i < nq, scores block[i * ld + j] with ids (ids_in ? ids_in[j] :
 * id0 + j) for j < n. Candidates whose id is < 0 or whose score is NaN are ignored. */
QV_API void qv_topk_push_cpu(size_t nq, size_t k, int larger_is_better, const float *block,
                             size_t n, size_t ld, const int64_t *ids_in, int64_t id0, float *scores,
                             int64_t *ids);

QV_API void qv_topk_finish(size_t nq, size_t k, int larger_is_better, float *scores, int64_t *ids);

#ifdef __cplusplus
}
#endif

#endif /* QUIVER_KERNELS_H */

/* Private to index/: a collection's GPU copy of its index (see quiver/gpu.h). Implemented by
 * gpu_faiss.c (GPU FAISS builds) or gpu_none.c. All calls are safe from any thread: the work
 * runs on the device's worker. */
#ifndef QUIVER_INDEX_GPU_H
#define QUIVER_INDEX_GPU_H

#include <stddef.h>
#include <stdint.h>

#include <faiss/c_api/Index_c.h>

#include "quiver/gpu.h"

/* FAISS 1.7.3's GPU selection limit: k and nprobe above it are served by the CPU index. */
#define QV__GPU_MAX_K 2048

typedef struct qv__gpu_index qv__gpu_index;

/* Copies `cpu` to the device with the most budget left that can reserve `need_bytes`; the budget
 * of `replacing` (a copy about to be freed, or NULL) counts as free on its device.
 * Returns QV_OK; QV_EUNAVAILABLE (no device); QV_ENOMEM (no device has the budget: the message
 * gives need and room); QV_EINTERNAL (FAISS refused the copy, e.g. an index type FAISS GPU lacks).
 */
qv_status qv__gpu_copy(const FaissIndex *cpu, size_t need_bytes, const qv__gpu_index *replacing,
                       qv__gpu_index **out, qv_error *err);
/* Frees the copy and returns its budget. NULL is allowed. */
void qv__gpu_free(qv__gpu_index *g);
/* Adds n vectors to the copy. */
qv_status qv__gpu_add(qv__gpu_index *g, size_t n, const float *x, const int64_t *ids,
                      qv_error *err);
/* Searches with nprobe lists (0 for a flat index); k and nprobe <= QV__GPU_MAX_K. */
qv_status qv__gpu_search(qv__gpu_index *g, const float *q, size_t n, size_t k, uint32_t nprobe,
                         float *scores, int64_t *ids, qv_error *err);
int qv__gpu_device_of(const qv__gpu_index *g);
size_t qv__gpu_bytes_of(const qv__gpu_index *g);

#endif

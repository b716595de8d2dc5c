/* The process's GPUs, as homes for collections' indexes.
 *
 * A collection can keep a copy of its FAISS index in GPU memory and answer searches there (see
 * qv_collection_opts.device). The CPU index stays the source of truth: it takes every add and
 * delete, is what gets saved, and answers whenever the GPU copy cannot (no GPU, over budget, a k
 * or nprobe beyond FAISS GPU's 2048, a failed GPU call).
 *
 * One context per device, made by qv_gpu_init: FAISS StandardGpuResources (cuBLAS handle,
 * streams, a fixed scratch arena and pinned staging memory, so no allocation per request) and
 * one worker thread. FAISS GPU indexes are not safe for concurrent calls (faiss#367, #985), so
 * every call on a device's indexes (copy, add, search, free) runs on that worker, fed by a queue.
 *
 * A build of Quiver links either the CPU FAISS (qv_gpu_compiled() == 0: every collection lives on
 * the CPU) or the GPU FAISS of `scripts/bootstrap.sh --with-gpu` (see docs/gpu.md). */
#ifndef QUIVER_GPU_H
#define QUIVER_GPU_H

#include <stddef.h>

#include "quiver/status.h"
#include "quiver/types.h" /* qv_device */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qv_gpu_opts {
  size_t budget_bytes; /* per device, for collections' GPU copies; 0 = 80% of the memory free at
                          init. A copy that would exceed it is not made. */
  size_t temp_bytes;   /* FAISS scratch memory per device; 0 = FAISS's default */
  int fallback_cpu;    /* 1 (default): a collection asking for "gpu" that cannot have one serves
                          from the CPU (the reason shows in its stats); 0: the request fails with
                          QV_ENOMEM (over budget) or QV_EPRECONDITION (no GPU) */
} qv_gpu_opts;

QV_API void qv_gpu_opts_init(qv_gpu_opts *o);

/* 1 when this build links a GPU-enabled FAISS. */
QV_API int qv_gpu_compiled(void);

/* Creates one context per visible device. Call once at start, before opening collections; with
 * no GPU build or no device it succeeds with 0 devices. Returns QV_OK; QV_EINTERNAL when a
 * device's FAISS resources cannot be made (message from FAISS). */
QV_API qv_status qv_gpu_init(const qv_gpu_opts *o, qv_error *err);

/* Stops the workers and frees the contexts. Close every collection first: while one still holds
 * a GPU copy this does nothing (the devices stay usable). */
QV_API void qv_gpu_shutdown(void);

/* Devices ready for collections (0 before qv_gpu_init, without a GPU build or device). */
QV_API int qv_gpu_devices(void);

/* 1 when qv_gpu_init ran with fallback_cpu set (the default before init). */
QV_API int qv_gpu_fallback_cpu(void);

typedef struct qv_gpu_info {
  int device;
  size_t total_bytes;  /* the device's memory */
  size_t budget_bytes; /* for collections */
  size_t used_bytes;   /* reserved by collections' GPU copies (estimates) */
  int collections;     /* GPU copies living there */
} qv_gpu_info;

/* Figures of device i (0 .. qv_gpu_devices() - 1). QV_OK or QV_EINVAL. */
QV_API qv_status qv_gpu_info_get(int i, qv_gpu_info *out, qv_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QUIVER_GPU_H */

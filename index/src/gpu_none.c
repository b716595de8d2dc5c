/* quiver/gpu.h for builds linked against the CPU-only FAISS: no device, every collection on the
 * CPU. */
#include "gpu.h"

int qv_gpu_compiled(void) {
  return 0;
}

static int g_fallback = 1;

qv_status qv_gpu_init(const qv_gpu_opts *o, qv_error *err) {
  (void)err;
  g_fallback = o ? o->fallback_cpu : 1;
  return QV_OK;
}

void qv_gpu_shutdown(void) {
  g_fallback = 1;
}

int qv_gpu_devices(void) {
  return 0;
}

int qv_gpu_fallback_cpu(void) {
  return g_fallback;
}

qv_status qv_gpu_info_get(int i, qv_gpu_info *out, qv_error *err) {
  (void)out;
  return qv_error_set(err, QV_EINVAL, "no GPU %d: this build links the CPU-only FAISS", i);
}

qv_status qv__gpu_copy(const FaissIndex *cpu, size_t need_bytes, const qv__gpu_index *replacing,
                       qv__gpu_index **out, qv_error *err) {
  (void)cpu, (void)need_bytes, (void)replacing;
  *out = NULL;
  return qv_error_set(err, QV_EUNAVAILABLE,
                      "this build links the CPU-only FAISS (build with scripts/bootstrap.sh "
                      "--with-gpu; docs/gpu.md)");
}

void qv__gpu_free(qv__gpu_index *g) {
  (void)g;
}

qv_status qv__gpu_add(qv__gpu_index *g, size_t n, const float *x, const int64_t *ids,
                      qv_error *err) {
  (void)g, (void)n, (void)x, (void)ids;
  return qv_error_set(err, QV_EUNAVAILABLE, "no GPU in this build");
}

qv_status qv__gpu_search(qv__gpu_index *g, const float *q, size_t n, size_t k, uint32_t nprobe,
                         float *scores, int64_t *ids, qv_error *err) {
  (void)g, (void)q, (void)n, (void)k, (void)nprobe, (void)scores, (void)ids;
  return qv_error_set(err, QV_EUNAVAILABLE, "no GPU in this build");
}

int qv__gpu_device_of(const qv__gpu_index *g) {
  (void)g;
  return -1;
}

size_t qv__gpu_bytes_of(const qv__gpu_index *g) {
  (void)g;
  return 0;
}

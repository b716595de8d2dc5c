/* Stand-ins for the CUDA entry points in a build without CUDA. */
#include "quiver/kernels.h"
#include "quiver/rerank.h"

int qv_cuda_device_count(void) {
  return 0;
}

qv_status qv_cuda_mem_info(int dev, size_t *free_bytes, size_t *total_bytes, qv_error *err) {
  (void)free_bytes, (void)total_bytes;
  return qv_error_set(err, QV_EUNAVAILABLE, "no CUDA device %d: this build has no CUDA", dev);
}

int qv_kernels_have_cuda(void) {
  return 0;
}

qv_status qv_distances_cuda(qv_metric metric, const float *queries, size_t nq, const float *base,
                            size_t nb, size_t d, float *out, qv_error *err) {
  (void)metric, (void)queries, (void)nq, (void)base, (void)nb, (void)d, (void)out;
  return qv_error_set(err, QV_EUNSUPPORTED,
                      "this build of Quiver has no CUDA kernels (configure with QUIVER_CUDA=ON)");
}

qv_status qv_rerank_cuda(qv_metric metric, const float *queries, size_t n, size_t d,
                         const int64_t *cand_ids, const float *cand_scores, const float *cand_vecs,
                         const float *cand_feats, size_t kc, const qv_rerank_params *p,
                         float *out_scores, int64_t *out_ids, qv_error *err) {
  (void)metric, (void)queries, (void)n, (void)d, (void)cand_ids, (void)cand_scores;
  (void)cand_vecs, (void)cand_feats, (void)kc, (void)p, (void)out_scores, (void)out_ids;
  return qv_error_set(err, QV_EUNSUPPORTED,
                      "this build of Quiver has no CUDA kernels (configure with QUIVER_CUDA=ON)");
}

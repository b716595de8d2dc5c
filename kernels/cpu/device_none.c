/* Stand-ins for the CUDA entry points in a build without CUDA. */
#include "quiver/kernels.h"

int qv_cuda_device_count(void) {
  return 0;
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

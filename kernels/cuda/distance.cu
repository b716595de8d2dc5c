/* CUDA twin of kernels/cpu/distance.c: the score matrix of nq queries against nb base rows.
 * One thread per (query, base) pair; the query row is staged in shared memory per block. */
#include <cuda_runtime.h>

#include "quiver/kernels.h"

namespace {

constexpr int kThreads = 256;

__global__ void distances_kernel(int metric, const float *__restrict__ q,
                                 const float *__restrict__ b, size_t nb, size_t d,
                                 float *__restrict__ out) {
  extern __shared__ float sq[];
  const size_t qi = blockIdx.y;
  for (size_t t = threadIdx.x; t < d; t += blockDim.x)
    sq[t] = q[qi * d + t];
  __syncthreads();
  const size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= nb)
    return;
  const float *row = b + j * d;
  float s = 0.0f;
  if (metric == QV_METRIC_L2) {
    for (size_t t = 0; t < d; t++) {
      float v = sq[t] - row[t];
      s = fmaf(v, v, s);
    }
  } else {
    for (size_t t = 0; t < d; t++)
      s = fmaf(sq[t], row[t], s);
  }
  out[qi * nb + j] = s;
}

qv_status cuda_fail(qv_error *err, cudaError_t e, const char *what) {
  qv_status code = (e == cudaErrorMemoryAllocation) ? QV_ENOMEM : QV_EUNAVAILABLE;
  return qv_error_set(err, code, "CUDA %s failed: %s", what, cudaGetErrorString(e));
}

} // namespace

extern "C" int qv_kernels_have_cuda(void) {
  return 1;
}

extern "C" int qv_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

extern "C" qv_status qv_cuda_mem_info(int dev, size_t *free_bytes, size_t *total_bytes,
                                      qv_error *err) {
  int prev = 0;
  if (dev < 0 || dev >= qv_cuda_device_count())
    return qv_error_set(err, QV_EUNAVAILABLE, "no CUDA device %d", dev);
  cudaGetDevice(&prev);
  cudaError_t e = cudaSetDevice(dev);
  if (e == cudaSuccess)
    e = cudaMemGetInfo(free_bytes, total_bytes);
  cudaSetDevice(prev);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return qv_error_set(err, QV_EUNAVAILABLE, "CUDA device %d: %s", dev, cudaGetErrorString(e));
  }
  return QV_OK;
}

extern "C" qv_status qv_distances_cuda(qv_metric metric, const float *queries, size_t nq,
                                       const float *base, size_t nb, size_t d, float *out,
                                       qv_error *err) {
  if (d == 0)
    return qv_error_set(err, QV_EINVAL, "distances: dimension must be > 0");
  if ((nq > 0 && queries == nullptr) || (nb > 0 && base == nullptr) || (nq && nb && !out))
    return qv_error_set(err, QV_EINVAL, "distances: NULL buffer");
  if (nq == 0 || nb == 0)
    return QV_OK;
  if (qv_cuda_device_count() == 0)
    return qv_error_set(err, QV_EUNAVAILABLE, "no CUDA device is present");
  if (nq > 65535)
    return qv_error_set(err, QV_EINVAL, "distances_cuda: at most 65535 queries per call");
  float *dq = nullptr, *db = nullptr, *dout = nullptr;
  qv_status st = QV_OK;
  cudaError_t e;
  if ((e = cudaMalloc(&dq, nq * d * sizeof(float))) != cudaSuccess ||
      (e = cudaMalloc(&db, nb * d * sizeof(float))) != cudaSuccess ||
      (e = cudaMalloc(&dout, nq * nb * sizeof(float))) != cudaSuccess) {
    st = cuda_fail(err, e, "cudaMalloc");
    goto done;
  }
  if ((e = cudaMemcpy(dq, queries, nq * d * sizeof(float), cudaMemcpyHostToDevice)) !=
          cudaSuccess ||
      (e = cudaMemcpy(db, base, nb * d * sizeof(float), cudaMemcpyHostToDevice)) != cudaSuccess) {
    st = cuda_fail(err, e, "cudaMemcpy to device");
    goto done;
  }
  {
    dim3 grid((unsigned)((nb + kThreads - 1) / kThreads), (unsigned)nq);
    distances_kernel<<<grid, kThreads, d * sizeof(float)>>>((int)metric, dq, db, nb, d, dout);
    if ((e = cudaGetLastError()) != cudaSuccess) {
      st = cuda_fail(err, e, "kernel launch");
      goto done;
    }
  }
  if ((e = cudaMemcpy(out, dout, nq * nb * sizeof(float), cudaMemcpyDeviceToHost)) != cudaSuccess)
    st = cuda_fail(err, e, "cudaMemcpy to host");
done:
  cudaFree(dq);
  cudaFree(db);
  cudaFree(dout);
  return st;
}

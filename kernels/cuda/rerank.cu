/* CUDA twin of kernels/cpu/rerank.c (contract: quiver/rerank.h).
 *
 * Float arithmetic uses explicitly rounded operations (__fmul_rn, __fadd_rn, __fsub_rn) in the CPU
 * twin's order, so nothing is contracted into FMAs and every score is bit-identical to the CPU's;
 * selection uses the same heap and tie rule, so ids match exactly too.
 *   kernel 1 (one thread per candidate): filters, de-duplication, exact re-score, blend
 *   kernel 2 (one block per query): plain top-k (thread 0, the CPU's heap) or MMR (block-wide
 *            argmax per pick, parallel update of each candidate's max similarity). */
#include <cuda_runtime.h>
#include <math.h>

#include "quiver/kernels.h"
#include "twins.h"
#include "quiver/rerank.h"

namespace {

constexpr int kThreads = 256;

struct DevParams {
  int metric, refine, blended, mmr, larger;
  size_t n, d, kc, k, nf, n_allow, n_deny;
  float lambda;
};


__device__ float dot_rn(const float *a, const float *b, size_t d) {
  float s = 0.0f;
  for (size_t t = 0; t < d; t++)
    s = __fadd_rn(s, __fmul_rn(a[t], b[t]));
  return s;
}

__device__ float l2_rn(const float *a, const float *b, size_t d) {
  float s = 0.0f;
  for (size_t t = 0; t < d; t++) {
    float v = __fsub_rn(a[t], b[t]);
    s = __fadd_rn(s, __fmul_rn(v, v));
  }
  return s;
}

__global__ void score_kernel(DevParams P, const float *q, const int64_t *ids, const float *cs,
                             const float *vecs, const float *feats, const float *w,
                             const int64_t *allow, const int64_t *deny, float *score,
                             unsigned char *live) {
  const size_t i = blockIdx.y, j = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= P.kc)
    return;
  const size_t at = i * P.kc + j;
  const int64_t id = ids[at];
  int ok = id >= 0 && !(deny && qv__sorted_contains(deny, P.n_deny, id)) &&
           !(allow && !qv__sorted_contains(allow, P.n_allow, id));
  for (size_t t = 0; ok && t < j; t++)
    if (ids[i * P.kc + t] == id)
      ok = 0; /* an earlier copy of the same id (it has the same filter result) */
  live[at] = (unsigned char)ok;
  if (!ok)
    return;
  const float *x = vecs + at * P.d, *qq = q + i * P.d;
  float sim;
  if (P.refine)
    sim = P.metric == QV_METRIC_L2 ? -l2_rn(qq, x, P.d) : dot_rn(qq, x, P.d);
  else
    sim = P.metric == QV_METRIC_L2 ? -cs[at] : cs[at];
  if (P.blended) {
    float s = __fmul_rn(w[0], sim);
    for (size_t f = 0; f < P.nf; f++)
      s = __fadd_rn(s, __fmul_rn(w[1 + f], feats[at * P.nf + f]));
    sim = s;
  }
  score[at] = sim;
}


__global__ void select_kernel(DevParams P, const int64_t *ids, const float *vecs, float *score,
                              unsigned char *live, float *maxsim, float *os_all, int64_t *oi_all) {
  const size_t i = blockIdx.x, k = P.k, kc = P.kc;
  float *os = os_all + i * k;
  int64_t *oi = oi_all + i * k;
  const int64_t *cid = ids + i * kc;
  float *sc = score + i * kc, *ms = maxsim + i * kc;
  unsigned char *lv = live + i * kc;
  if (!P.mmr) {
    if (threadIdx.x != 0)
      return;
    const int larger = P.larger;
    const float empty = larger ? -INFINITY : INFINITY;
    for (size_t t = 0; t < k; t++) {
      os[t] = empty;
      oi[t] = -1;
    }
    for (size_t j = 0; j < kc; j++) {
      if (!lv[j])
        continue;
      float v = (!larger && P.metric == QV_METRIC_L2) ? -sc[j] : sc[j];
      if (!isnan(v) && qv__ranks_worse(larger, os[0], oi[0], v, cid[j])) {
        os[0] = v;
        oi[0] = cid[j];
        qv__heap_sift_down(k, larger, os, oi, 0);
      }
    }
    for (size_t m = k; m > 1; m--) {
      float ts = os[0];
      os[0] = os[m - 1];
      os[m - 1] = ts;
      int64_t ti = oi[0];
      oi[0] = oi[m - 1];
      oi[m - 1] = ti;
      qv__heap_sift_down(m - 1, larger, os, oi, 0);
    }
    for (size_t t = 0; t < k; t++)
      if (oi[t] < 0)
        os[t] = empty;
    return;
  }
  /* MMR. */
  __shared__ float bv[kThreads];
  __shared__ size_t bj[kThreads];
  for (size_t j = threadIdx.x; j < kc; j += blockDim.x)
    ms[j] = -INFINITY;
  __syncthreads();
  const float lambda = P.lambda, mu = __fsub_rn(1.0f, lambda);
  size_t picked = 0;
  for (; picked < k; picked++) {
    float best = -INFINITY;
    size_t bestj = kc;
    for (size_t j = threadIdx.x; j < kc; j += blockDim.x) {
      if (!lv[j])
        continue;
      float v = picked == 0 ? sc[j] : __fsub_rn(__fmul_rn(lambda, sc[j]), __fmul_rn(mu, ms[j]));
      if (bestj == kc || v > best || (v == best && cid[j] < cid[bestj])) {
        best = v;
        bestj = j;
      }
    }
    bv[threadIdx.x] = best;
    bj[threadIdx.x] = bestj;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if ((int)threadIdx.x < s) {
        size_t a = bj[threadIdx.x], b = bj[threadIdx.x + s];
        float va = bv[threadIdx.x], vb = bv[threadIdx.x + s];
        if (b != kc && (a == kc || vb > va || (vb == va && cid[b] < cid[a]))) {
          bv[threadIdx.x] = vb;
          bj[threadIdx.x] = b;
        }
      }
      __syncthreads();
    }
    const size_t pick = bj[0];
    __syncthreads();
    if (pick == kc)
      break;
    if (threadIdx.x == 0) {
      lv[pick] = 0;
      os[picked] = sc[pick];
      oi[picked] = cid[pick];
    }
    __syncthreads();
    const float *xb = vecs + (i * kc + pick) * P.d;
    for (size_t j = threadIdx.x; j < kc; j += blockDim.x) {
      if (!lv[j])
        continue;
      const float *x = vecs + (i * kc + j) * P.d;
      float s = P.metric == QV_METRIC_L2 ? -l2_rn(x, xb, P.d) : dot_rn(x, xb, P.d);
      if (s > ms[j])
        ms[j] = s;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0)
    for (; picked < k; picked++) {
      os[picked] = -INFINITY;
      oi[picked] = -1;
    }
}

qv_status fail(qv_error *err, cudaError_t e, const char *what) {
  return qv_error_set(err, e == cudaErrorMemoryAllocation ? QV_ENOMEM : QV_EUNAVAILABLE,
                      "CUDA %s failed: %s", what, cudaGetErrorString(e));
}

/* cudaMalloc + copy of n bytes (nothing for n == 0). */
cudaError_t up(void **dst, const void *src, size_t n) {
  *dst = nullptr;
  if (n == 0 || src == nullptr)
    return cudaSuccess;
  cudaError_t e = cudaMalloc(dst, n);
  if (e == cudaSuccess)
    e = cudaMemcpy(*dst, src, n, cudaMemcpyHostToDevice);
  return e;
}

} // namespace

extern "C" qv_status qv_rerank_cuda(qv_metric metric, const float *queries, size_t n, size_t d,
                                    const int64_t *cand_ids, const float *cand_scores,
                                    const float *cand_vecs, const float *cand_feats, size_t kc,
                                    const qv_rerank_params *p, float *out_scores, int64_t *out_ids,
                                    qv_error *err) {
  qv_status st = qv_rerank_check(queries, n, d, cand_ids, cand_scores, cand_vecs, cand_feats, kc, p,
                                 out_scores, out_ids, err);
  if (st != QV_OK || n == 0)
    return st;
  if (qv_cuda_device_count() == 0)
    return qv_error_set(err, QV_EUNAVAILABLE, "no CUDA device is present");
  if (n > 65535)
    return qv_error_set(err, QV_EINVAL, "rerank_cuda: at most 65535 queries per call");
  DevParams P{};
  P.metric = (int)metric;
  P.refine = p->refine;
  P.blended = p->weights != nullptr;
  P.mmr = p->mmr_lambda > 0.0f;
  P.larger = P.blended || P.mmr || qv_metric_larger_is_better(metric);
  P.n = n;
  P.d = d;
  P.kc = kc;
  P.k = p->k;
  P.nf = p->n_features;
  P.n_allow = p->allow ? p->n_allow : 0;
  P.n_deny = p->deny ? p->n_deny : 0;
  P.lambda = p->mmr_lambda;
  void *dq = nullptr, *dids = nullptr, *dcs = nullptr, *dv = nullptr, *df = nullptr, *dw = nullptr,
       *da = nullptr, *dd = nullptr, *dsc = nullptr, *dlv = nullptr, *dms = nullptr, *dos = nullptr,
       *doi = nullptr;
  cudaError_t e;
  const size_t nk = n * kc;
  if ((e = up(&dq, queries, n * d * sizeof(float))) != cudaSuccess ||
      (e = up(&dids, cand_ids, nk * sizeof(int64_t))) != cudaSuccess ||
      (e = up(&dcs, p->refine ? nullptr : cand_scores, nk * sizeof(float))) != cudaSuccess ||
      (e = up(&dv, cand_vecs, nk * d * sizeof(float))) != cudaSuccess ||
      (e = up(&df, cand_feats, nk * P.nf * sizeof(float))) != cudaSuccess ||
      (e = up(&dw, p->weights, P.blended ? (P.nf + 1) * sizeof(float) : 0)) != cudaSuccess ||
      (e = up(&da, p->allow, P.n_allow * sizeof(int64_t))) != cudaSuccess ||
      (e = up(&dd, p->deny, P.n_deny * sizeof(int64_t))) != cudaSuccess ||
      (e = cudaMalloc(&dsc, (nk ? nk : 1) * sizeof(float))) != cudaSuccess ||
      (e = cudaMalloc(&dlv, nk ? nk : 1)) != cudaSuccess ||
      (e = cudaMalloc(&dms, (nk ? nk : 1) * sizeof(float))) != cudaSuccess ||
      (e = cudaMalloc(&dos, n * P.k * sizeof(float))) != cudaSuccess ||
      (e = cudaMalloc(&doi, n * P.k * sizeof(int64_t))) != cudaSuccess) {
    st = fail(err, e, "allocation or copy to device");
    goto out;
  }
  if (kc > 0) {
    dim3 grid((unsigned)((kc + kThreads - 1) / kThreads), (unsigned)n);
    score_kernel<<<grid, kThreads>>>(P, (const float *)dq, (const int64_t *)dids,
                                     (const float *)dcs, (const float *)dv, (const float *)df,
                                     (const float *)dw, (const int64_t *)da, (const int64_t *)dd,
                                     (float *)dsc, (unsigned char *)dlv);
    if ((e = cudaGetLastError()) != cudaSuccess) {
      st = fail(err, e, "score kernel launch");
      goto out;
    }
  }
  select_kernel<<<(unsigned)n, kThreads>>>(P, (const int64_t *)dids, (const float *)dv,
                                           (float *)dsc, (unsigned char *)dlv, (float *)dms,
                                           (float *)dos, (int64_t *)doi);
  if ((e = cudaGetLastError()) != cudaSuccess ||
      (e = cudaMemcpy(out_scores, dos, n * P.k * sizeof(float), cudaMemcpyDeviceToHost)) !=
          cudaSuccess ||
      (e = cudaMemcpy(out_ids, doi, n * P.k * sizeof(int64_t), cudaMemcpyDeviceToHost)) !=
          cudaSuccess)
    st = fail(err, e, "select kernel or copy back");
out:
  for (void *ptr : {dq, dids, dcs, dv, df, dw, da, dd, dsc, dlv, dms, dos, doi})
    cudaFree(ptr);
  return st;
}

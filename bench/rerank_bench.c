/* bench/rerank_bench — the rerank stage, CPU twin vs CUDA twin, on the same synthetic candidates.
 *
 *   rerank_bench [--queries N] [--candidates KC] [--dim D] [--k K] [--features F] [--mmr L]
 *                [--reps R] [--json]
 *
 * Prints the configuration, the median time of each twin over R runs (the CUDA figure includes
 * the host<->device copies of this simple entry point), their ratio, and whether the two agree
 * bit for bit. Without a CUDA device only the CPU figure is printed. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quiver/clock.h"
#include "quiver/kernels.h"
#include "quiver/rerank.h"
#include "quiver/synth.h"

#include "bench_common.h"

int main(int argc, char **argv) {
  size_t n = 256, kc = 1000, d = 128, k = 10, F = 4, reps = 5;
  float mmr = 0.0f;
  int json = 0;
  static const struct option opts[] = {{"queries", required_argument, 0, 'n'},
                                       {"candidates", required_argument, 0, 'c'},
                                       {"dim", required_argument, 0, 'd'},
                                       {"k", required_argument, 0, 'k'},
                                       {"features", required_argument, 0, 'f'},
                                       {"mmr", required_argument, 0, 'm'},
                                       {"reps", required_argument, 0, 'r'},
                                       {"json", no_argument, 0, 'j'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'n':
      n = strtoul(optarg, NULL, 10);
      break;
    case 'c':
      kc = strtoul(optarg, NULL, 10);
      break;
    case 'd':
      d = strtoul(optarg, NULL, 10);
      break;
    case 'k':
      k = strtoul(optarg, NULL, 10);
      break;
    case 'f':
      F = strtoul(optarg, NULL, 10);
      break;
    case 'm':
      mmr = strtof(optarg, NULL);
      break;
    case 'r':
      reps = strtoul(optarg, NULL, 10);
      break;
    case 'j':
      json = 1;
      break;
    default:
      fprintf(stderr, "see the comment at the top of bench/rerank_bench.c\n");
      return 2;
    }
  }
  if (n == 0 || kc == 0 || d == 0 || k == 0 || reps == 0 || F > QV_MAX_FEATURES) {
    fprintf(stderr, "rerank_bench: sizes must be positive (features <= %d)\n", QV_MAX_FEATURES);
    return 2;
  }
  float *q = malloc(n * d * sizeof(float)), *v = malloc(n * kc * d * sizeof(float));
  float *f = malloc((n * kc * F + 1) * sizeof(float)), *w = malloc((F + 1) * sizeof(float));
  int64_t *ids = malloc(n * kc * sizeof(int64_t));
  float *s1 = malloc(n * k * sizeof(float)), *s2 = malloc(n * k * sizeof(float));
  int64_t *i1 = malloc(n * k * sizeof(int64_t)), *i2 = malloc(n * k * sizeof(int64_t));
  double *t1 = malloc(reps * sizeof(double)), *t2 = malloc(reps * sizeof(double));
  if (!q || !v || !f || !w || !ids || !s1 || !s2 || !i1 || !i2 || !t1 || !t2 ||
      qv_synth_mixture(q, n, d, 16, 1) || qv_synth_mixture(v, n * kc, d, 16, 2) ||
      qv_synth_mixture(f, n * kc * F + 1, 1, 4, 3)) {
    fprintf(stderr, "rerank_bench: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < n * kc; i++)
    ids[i] = (int64_t)((i * 2654435761u) % (10 * kc));
  w[0] = 1.0f;
  for (size_t i = 1; i <= F; i++)
    w[i] = 0.01f * (float)i;
  qv_rerank_params p;
  qv_rerank_params_init(&p);
  p.k = k;
  p.weights = F ? w : NULL;
  p.n_features = F;
  p.mmr_lambda = mmr;
  qv_error e = {0};
  int gpu = qv_cuda_device_count() > 0;
  for (size_t r = 0; r < reps; r++) {
    double a = qv_monotonic_s();
    if (qv_rerank_cpu(QV_METRIC_L2, q, n, d, ids, NULL, v, f, kc, &p, s1, i1, &e) != QV_OK) {
      fprintf(stderr, "cpu: %s\n", e.msg);
      return 1;
    }
    t1[r] = qv_monotonic_s() - a;
    if (gpu) {
      a = qv_monotonic_s();
      if (qv_rerank_cuda(QV_METRIC_L2, q, n, d, ids, NULL, v, f, kc, &p, s2, i2, &e) != QV_OK) {
        fprintf(stderr, "cuda: %s\n", e.msg);
        return 1;
      }
      t2[r] = qv_monotonic_s() - a;
    }
  }
  double cpu = bench_median(t1, reps), cuda = gpu ? bench_median(t2, reps) : 0;
  int same =
      gpu && !memcmp(i1, i2, n * k * sizeof(int64_t)) && !memcmp(s1, s2, n * k * sizeof(float));
  char cuda_s[32] = "null";
  if (gpu)
    snprintf(cuda_s, sizeof cuda_s, "%.6f", cuda);
  if (json)
    printf("{\"queries\": %zu, \"candidates\": %zu, \"dim\": %zu, \"k\": %zu, \"features\": %zu, "
           "\"mmr_lambda\": %g, \"reps\": %zu, \"cpu_seconds\": %.6f, \"cuda_seconds\": %s, "
           "\"cuda_device\": %s, \"identical\": %s}\n",
           n, kc, d, k, F, (double)mmr, reps, cpu, cuda_s, gpu ? "true" : "false",
           gpu ? (same ? "true" : "false") : "null");
  else
    printf("rerank: %zu queries x %zu candidates, dim %zu, k %zu, %zu features, mmr %g, median "
           "of %zu\n  cpu %.4f s  cuda %s  identical %s\n",
           n, kc, d, k, F, (double)mmr, reps, cpu, gpu ? "measured below" : "(no device)",
           gpu ? (same ? "yes" : "NO") : "-");
  if (gpu && !json)
    printf("  cuda %.4f s (with copies), cpu/cuda = %.1fx\n", cuda, cpu / cuda);
  free(q), free(v), free(f), free(w), free(ids), free(s1), free(s2), free(i1), free(i2);
  free(t1), free(t2);
  return gpu && !same ? 1 : 0;
}

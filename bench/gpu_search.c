/* bench/gpu_search — GPU-resident search: Quiver's collection (device gpu) beside FAISS GPU
 * in-process on the same index, over nprobe x batch; built only against the GPU FAISS.
 *
 * For each spec it builds the collection once on the CPU, moves it to GPU 0 (quiver/gpu.h),
 * saves it, reads the saved index.faiss back through the FAISS C API and copies it to the GPU
 * with its own StandardGpuResources. Then for each (nprobe, batch) both answer the same queries,
 * alternating A B A B (BENCHMARKING.md); it prints median QPS of each, their ratio and recall@k
 * of both, one JSON object per line with the whole configuration.
 *
 * Each row also gives the memory-bandwidth bound: the bytes of inverted-list data the queries'
 * probed lists hold (found by asking the coarse quantizer for each query's nprobe lists and adding
 * their sizes x code size; a Flat index scans the whole base), per query, and that times QPS as a
 * fraction of the H200's 4.8 TB/s (--peak-gbs sets another peak). It counts list codes only: not
 * the coarse centroids, ids or results, and not reuse through caches (a batch whose queries probe
 * the same lists can go past 1.0).
 *
 *   gpu_search --data ../shared/data/deep10k/deep10k --specs "IVF100,Flat" \
 *              [--nprobes 1,8,32] [--batches 1,64,1024,10000] [--k 10] [--reps 3] [--queries N]
 *   gpu_search --synth 1000000x128 --specs "IVF1024,Flat" ...   (a seeded Gaussian mixture;
 *              ground truth by exact search on the GPU)
 *   gpu_search --devices     prints the CUDA devices Quiver sees; exit 3 when there are none
 *
 * Both sides serve from one GPU with one thread issuing calls; Quiver's figures include its
 * validation, the queue hop to the device worker and the per-call nprobe setting. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/gpu/GpuAutoTune_c.h>
#include <faiss/c_api/gpu/StandardGpuResources_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include "quiver/clock.h"
#include "quiver/collection.h"
#include "quiver/fsutil.h"
#include "quiver/gpu.h"
#include "quiver/synth.h"

#include "bench_common.h"
#include "bench_pair.h"

/* The FAISS side for bench_ab. */
static void search_faiss(void *ctx, size_t off, size_t m) {
  bench_pair *p = ctx;
  if (faiss_Index_search(p->fi, (idx_t)m, p->q + off * p->d, (idx_t)p->k, p->sc + off * p->k,
                         p->ib + off * p->k) != 0)
    bench_die("faiss search", faiss_get_last_error());
}

/* Bytes of one entry's code in an index of this spec: "Flat" / "IVF<n>,Flat" 4d, SQ8 d, SQ4 d/2,
 * SQfp16 2d, PQ<m>[x<b>] m*b/8. 0 for a spec it does not know (then no bound is printed). */
static double code_bytes(const char *spec, size_t d) {
  const char *c = strrchr(spec, ',');
  c = c ? c + 1 : spec;
  unsigned m = 0, b = 8;
  if (strcmp(c, "Flat") == 0)
    return 4.0 * (double)d;
  if (strcmp(c, "SQ8") == 0)
    return (double)d;
  if (strcmp(c, "SQ4") == 0)
    return (double)d / 2;
  if (strcmp(c, "SQfp16") == 0)
    return 2.0 * (double)d;
  if (sscanf(c, "PQ%ux%u", &m, &b) >= 1 && m > 0)
    return (double)m * b / 8.0;
  return 0;
}

/* Average bytes of list codes in the lists n queries probe at nprobe (whole base for Flat). */
static double list_bytes_per_query(FaissIndex *cpu, const float *q, size_t n, uint32_t np,
                                   size_t nb, double code) {
  FaissIndexIVF *ivf = faiss_IndexIVF_cast(cpu);
  if (ivf == NULL || np == 0)
    return (double)nb * code;
  FaissIndex *coarse = faiss_IndexIVF_quantizer(ivf);
  float *dist = malloc(n * np * sizeof *dist);
  idx_t *lists = malloc(n * np * sizeof *lists);
  if (dist == NULL || lists == NULL)
    bench_die("bandwidth bound", "out of memory");
  if (faiss_Index_search(coarse, (idx_t)n, q, (idx_t)np, dist, lists) != 0)
    bench_die("coarse search", faiss_get_last_error());
  double entries = 0;
  for (size_t i = 0; i < n * np; i++)
    if (lists[i] >= 0)
      entries += (double)faiss_IndexIVF_get_list_size(ivf, (size_t)lists[i]);
  free(dist);
  free(lists);
  return entries / (double)n * code;
}

/* --devices: what a GPU check runs first. */
static int list_devices(void) {
  qv_gpu_opts go;
  qv_gpu_opts_init(&go);
  qv_error e = {0};
  if (qv_gpu_init(&go, &e) != QV_OK) {
    printf("no CUDA device: %s\n", e.msg);
    return 3;
  }
  int n = qv_gpu_devices();
  if (n == 0) {
    printf("no CUDA device is present (GPU FAISS build: %s)\n", qv_gpu_compiled() ? "yes" : "no");
    qv_gpu_shutdown();
    return 3;
  }
  for (int i = 0; i < n; i++) {
    qv_gpu_info gi;
    if (qv_gpu_info_get(i, &gi, &e) == QV_OK)
      printf("gpu %d: %zu MiB total, %zu MiB budget for collections\n", gi.device,
             gi.total_bytes >> 20, gi.budget_bytes >> 20);
  }
  qv_gpu_shutdown();
  return 0;
}

/* Exact top-k on the GPU with a FAISS flat index (the synthetic set's ground truth). */
static int64_t *exact_gt(FaissStandardGpuResources *res, const float *base, size_t nb,
                         const float *q, size_t nq, size_t d, size_t k) {
  FaissIndex *flat, *g;
  if (faiss_index_factory(&flat, (int)d, "Flat", METRIC_L2) != 0 ||
      faiss_Index_add(flat, (idx_t)nb, base) != 0 || faiss_index_cpu_to_gpu(res, 0, flat, &g) != 0)
    bench_die("ground truth", faiss_get_last_error());
  int64_t *gt = malloc(nq * k * sizeof *gt);
  float *sc = malloc(nq * k * sizeof *sc);
  if (faiss_Index_search(g, (idx_t)nq, q, (idx_t)k, sc, gt) != 0)
    bench_die("ground truth search", faiss_get_last_error());
  faiss_Index_free(g);
  faiss_Index_free(flat);
  free(sc);
  return gt;
}

int main(int argc, char **argv) {
  bench_prog = "gpu_search";
  const char *data = NULL, *synth = NULL, *specs = "IVF100,Flat", *nprobes = "1,8,32";
  const char *batches = "1,64,1024,10000";
  size_t k = 10, reps = 3, max_q = 0;
  double peak_gbs = 4800; /* H200 HBM3e */
  static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                       {"synth", required_argument, 0, 'S'},
                                       {"specs", required_argument, 0, 's'},
                                       {"nprobes", required_argument, 0, 'n'},
                                       {"batches", required_argument, 0, 'b'},
                                       {"k", required_argument, 0, 'k'},
                                       {"reps", required_argument, 0, 'r'},
                                       {"queries", required_argument, 0, 'q'},
                                       {"peak-gbs", required_argument, 0, 'P'},
                                       {"devices", no_argument, 0, 'D'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'd':
      data = optarg;
      break;
    case 'S':
      synth = optarg;
      break;
    case 's':
      specs = optarg;
      break;
    case 'n':
      nprobes = optarg;
      break;
    case 'b':
      batches = optarg;
      break;
    case 'k':
      k = strtoul(optarg, NULL, 10);
      break;
    case 'r':
      reps = strtoul(optarg, NULL, 10);
      break;
    case 'q':
      max_q = strtoul(optarg, NULL, 10);
      break;
    case 'P':
      peak_gbs = strtod(optarg, NULL);
      break;
    case 'D':
      return list_devices();
    default:
      fprintf(stderr, "see the comment at the top of bench/gpu_search.c\n");
      return 2;
    }
  }
  if ((data == NULL) == (synth == NULL) || k == 0 || reps == 0 || !(peak_gbs > 0))
    bench_die("usage", "give one of --data PREFIX or --synth NxD");
  qv_gpu_opts go;
  qv_gpu_opts_init(&go);
  go.fallback_cpu = 0; /* a benchmark that silently ran on the CPU would be worse than none */
  qv_error e = {0};
  if (qv_gpu_init(&go, &e) != QV_OK)
    bench_die("gpu init", e.msg);
  if (qv_gpu_devices() == 0)
    bench_die("gpu init", "no CUDA device is present");
  FaissStandardGpuResources *res;
  FaissParameterSpace *ps;
  if (faiss_StandardGpuResources_new(&res) != 0 || faiss_GpuParameterSpace_new(&ps) != 0)
    bench_die("FAISS GPU resources", faiss_get_last_error());

  bench_data ds;
  char path[QV_PATH_MAX], label[256];
  if (data) {
    if (bench_data_load(&ds, data, "_groundtruth.ivecs", k) != 0)
      bench_die("data", "shapes do not match");
    snprintf(label, sizeof label, "%s", strrchr(data, '/') ? strrchr(data, '/') + 1 : data);
  } else {
    if (sscanf(synth, "%zux%zu", &ds.nb, &ds.d) != 2 || ds.nb == 0 || ds.d == 0)
      bench_die("--synth", "want NxD, e.g. 1000000x128");
    ds.nq = 10000;
    ds.base = malloc(ds.nb * ds.d * sizeof(float));
    ds.q = malloc(ds.nq * ds.d * sizeof(float));
    float *both = malloc((ds.nb + ds.nq) * ds.d * sizeof(float));
    if (!ds.base || !ds.q || !both || qv_synth_mixture(both, ds.nb + ds.nq, ds.d, 256, 42) != 0)
      bench_die("--synth", "out of memory");
    /* queries: held-out points of the mixture */
    memcpy(ds.base, both, ds.nb * ds.d * sizeof(float));
    memcpy(ds.q, both + ds.nb * ds.d, ds.nq * ds.d * sizeof(float));
    free(both);
    ds.gt = exact_gt(res, ds.base, ds.nb, ds.q, ds.nq, ds.d, k);
    ds.gk = k;
    snprintf(label, sizeof label, "synth-%zux%zu", ds.nb, ds.d);
  }
  const size_t nb = ds.nb, d = ds.d, nq = max_q && max_q < ds.nq ? max_q : ds.nq;
  int64_t *rowids = bench_row_ids(nb);
  bench_pair p = {.q = ds.q, .d = d, .k = k};
  p.sc = malloc(nq * k * sizeof *p.sc);
  p.ia = malloc(nq * k * sizeof *p.ia);
  p.ib = malloc(nq * k * sizeof *p.ib);

  char *spec_list = strdup(specs);
  for (char *sv = NULL, *spec = strtok_r(spec_list, ";", &sv); spec;
       spec = strtok_r(NULL, ";", &sv)) {
    qv_collection_opts o;
    qv_collection_opts_init(&o);
    o.dim = d;
    o.spec = spec;
    o.device = QV_DEVICE_GPU;
    char dir[] = "/tmp/quiver-gpubench-XXXXXX";
    if (mkdtemp(dir) == NULL)
      bench_die("mkdtemp", NULL);
    double t0 = qv_monotonic_s();
    bench_pair_build(&p, &o, ds.base, nb, rowids, dir, path, sizeof path);
    double build_s = qv_monotonic_s() - t0;
    qv_collection_stats st;
    qv_collection_stats_get(p.col, &st, NULL);
    if (st.gpu < 0)
      bench_die(spec, st.placement);
    FaissIndex *cpu;
    if (faiss_read_index_fname(path, 0, &cpu) != 0 ||
        faiss_index_cpu_to_gpu(res, 0, cpu, &p.fi) != 0)
      bench_die("FAISS GPU copy", faiss_get_last_error());
    int ivf = faiss_IndexIVF_cast(cpu) != NULL;
    const double code = code_bytes(spec, d);
    char *np_list = strdup(nprobes);
    for (char *nv = NULL, *nps = strtok_r(np_list, ",", &nv); nps; nps = strtok_r(NULL, ",", &nv)) {
      uint32_t np = ivf ? (uint32_t)strtoul(nps, NULL, 10) : 0;
      if (ivf &&
          (np > st.nlist || faiss_ParameterSpace_set_index_parameter(ps, p.fi, "nprobe", np) != 0))
        continue;
      p.sp = (qv_search_params){.k = k, .nprobe = np};
      char *b_list = strdup(batches);
      for (char *bv = NULL, *bs = strtok_r(b_list, ",", &bv); bs; bs = strtok_r(NULL, ",", &bv)) {
        size_t b = strtoul(bs, NULL, 10);
        size_t n = b == 1 && nq > 2000 ? 2000 : nq; /* batch 1: a bounded number of calls */
        double sa, sb;
        bench_ab(n, b, reps, bench_pair_search_quiver, search_faiss, &p, &sa, &sb);
        double qa = n / sa, qb = n / sb;
        double lbq = code > 0 ? list_bytes_per_query(cpu, ds.q, n, np, nb, code) : 0;
        qv_collection_stats_get(p.col, &st, NULL);
        printf("{\"data\": \"%s\", \"n\": %zu, \"dim\": %zu, \"spec\": \"%s\", \"nprobe\": %u, "
               "\"k\": %zu, \"batch\": %zu, \"queries\": %zu, \"reps\": %zu, \"threads\": 1, "
               "\"device\": \"gpu %d\", \"quiver_qps\": %.0f, \"faiss_gpu_qps\": %.0f, "
               "\"ratio\": %.3f, \"recall_quiver\": %.4f, \"recall_faiss\": %.4f, "
               "\"build_s\": %.2f, \"gpu_fallbacks\": %llu, \"list_bytes_per_query\": %.0f, "
               "\"peak_gbs\": %.0f, \"bw_frac_quiver\": %.4f, \"bw_frac_faiss\": %.4f}\n",
               label, nb, d, spec, np, k, b, n, reps, st.gpu, qa, qb, qa / qb,
               qv_recall_at_k(p.ia, ds.gt, ds.gk, n, k), qv_recall_at_k(p.ib, ds.gt, ds.gk, n, k),
               build_s, (unsigned long long)st.gpu_fallbacks, lbq, peak_gbs,
               lbq * qa / (peak_gbs * 1e9), lbq * qb / (peak_gbs * 1e9));
        fflush(stdout);
      }
      free(b_list);
      if (!ivf)
        break;
    }
    free(np_list);
    faiss_Index_free(p.fi);
    faiss_Index_free(cpu);
    qv_collection_close(p.col);
    bench_remove_dir(dir);
  }
  free(spec_list);
  faiss_ParameterSpace_free(ps);
  faiss_StandardGpuResources_free(res);
  qv_gpu_shutdown();
  bench_data_free(&ds);
  free(rowids);
  free(p.sc);
  free(p.ia);
  free(p.ib);
  return 0;
}

/* bench/index_compare — Quiver's index layer vs FAISS in-process, on the same index file.
 *
 * For each (spec, nprobe) it builds the collection once with quiver's index/ layer, saves it,
 * loads the saved index.faiss a second time straight through the FAISS C API, and then runs the
 * whole query set through both, alternating A B A B (BENCHMARKING.md), reporting the median QPS of
 * each, their ratio, and recall@k of both against the shipped ground truth.
 *
 *   index_compare --data ../shared/data/sift5k/sift5k --specs IVF64,Flat --nprobes 1,8,32
 *   (for an HNSW spec the --nprobes values are its efSearch)
 *                 [--metric l2] [--k 10] [--batch 0] [--reps 5] [--gt-suffix _groundtruth.ivecs]
 *
 * --batch 0 sends all queries in one call; --batch 1 one query per call. Set OMP_NUM_THREADS for
 * both (the figures print the thread count). */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_io_c.h>

#include "quiver/collection.h"
#include "quiver/fsutil.h"

#include "bench_common.h"
#include "bench_pair.h"

/* The FAISS side for bench_ab. */
static void search_faiss(void *ctx, size_t off, size_t m) {
  bench_pair *p = ctx;
  if (faiss_Index_search(p->fi, (idx_t)m, p->q + off * p->d, (idx_t)p->k, p->sc + off * p->k,
                         p->ib + off * p->k) != 0)
    bench_die("faiss search", NULL);
}

int main(int argc, char **argv) {
  bench_prog = "index_compare";
  const char *data = NULL, *specs = "IVF64,Flat", *nprobes = "1,4,16,32", *metric_s = "l2";
  const char *gt_suffix = "_groundtruth.ivecs";
  size_t k = 10, batch = 0, reps = 5;
  static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                       {"specs", required_argument, 0, 's'},
                                       {"nprobes", required_argument, 0, 'n'},
                                       {"metric", required_argument, 0, 'm'},
                                       {"k", required_argument, 0, 'k'},
                                       {"batch", required_argument, 0, 'b'},
                                       {"reps", required_argument, 0, 'r'},
                                       {"gt-suffix", required_argument, 0, 'g'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'd':
      data = optarg;
      break;
    case 's':
      specs = optarg;
      break;
    case 'n':
      nprobes = optarg;
      break;
    case 'm':
      metric_s = optarg;
      break;
    case 'k':
      k = strtoul(optarg, NULL, 10);
      break;
    case 'b':
      batch = strtoul(optarg, NULL, 10);
      break;
    case 'r':
      reps = strtoul(optarg, NULL, 10);
      break;
    case 'g':
      gt_suffix = optarg;
      break;
    default:
      fprintf(stderr, "see the comment at the top of bench/index_compare.c\n");
      return 2;
    }
  }
  if (data == NULL || k == 0 || reps == 0) {
    fprintf(stderr, "usage: index_compare --data PREFIX [--specs S;S] [--nprobes 1,8] ...\n");
    return 2;
  }
  qv_error e = {0};
  qv_metric metric;
  if (qv_metric_parse(metric_s, &metric, &e) != QV_OK)
    bench_die("--metric", e.msg);
  bench_data ds;
  if (bench_data_load(&ds, data, gt_suffix, k) != 0)
    bench_die("data shapes do not match", NULL);
  const size_t nb = ds.nb, d = ds.d, nq = ds.nq;
  int64_t *rowids = bench_row_ids(nb);
  size_t b = batch ? batch : nq;
  bench_pair p = {.q = ds.q, .d = d, .k = k};
  p.sc = malloc(nq * k * sizeof(float));
  p.ia = malloc(nq * k * sizeof(int64_t));
  p.ib = malloc(nq * k * sizeof(int64_t));

  printf("# data=%s n=%zu dim=%zu queries=%zu metric=%s k=%zu batch=%zu reps=%zu "
         "omp_threads=%d\n",
         data, nb, d, nq, metric_s, k, b, reps, omp_get_max_threads());
  printf("%-14s %6s %10s %10s %8s %9s %9s\n", "spec", "np/ef", "quiver_qps", "faiss_qps", "ratio",
         "recall_q", "recall_f");
  char *spec_list = strdup(specs);
  for (char *sv = NULL, *spec = strtok_r(spec_list, ";", &sv); spec;
       spec = strtok_r(NULL, ";", &sv)) {
    qv_collection_opts o;
    qv_collection_opts_init(&o);
    o.dim = d;
    o.metric = metric;
    o.spec = spec;
    char dir[] = "/tmp/quiver-bench-XXXXXX";
    if (mkdtemp(dir) == NULL)
      bench_die("mkdtemp", NULL);
    char path[QV_PATH_MAX];
    bench_pair_build(&p, &o, ds.base, nb, rowids, dir, path, sizeof path);
    if (faiss_read_index_fname(path, 0, &p.fi) != 0)
      bench_die("faiss_read_index_fname", NULL);
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(p.fi);
    const int graph = strncmp(spec, "HNSW", 4) == 0;
    char *np_list = strdup(nprobes);
    for (char *nv = NULL, *nps = strtok_r(np_list, ",", &nv); nps; nps = strtok_r(NULL, ",", &nv)) {
      uint32_t np = (uint32_t)strtoul(nps, NULL, 10);
      if (graph) { /* the parameter is efSearch: set on FAISS's copy, passed to quiver's */
        FaissParameterSpace *ps = NULL;
        if (faiss_ParameterSpace_new(&ps) != 0 ||
            faiss_ParameterSpace_set_index_parameter(ps, p.fi, "efSearch", (double)np) != 0)
          bench_die("setting efSearch", NULL);
        faiss_ParameterSpace_free(ps);
      } else if (ivf == NULL) {
        np = 0;
      } else if (np > faiss_IndexIVF_nlist(ivf)) {
        continue;
      }
      if (ivf)
        faiss_IndexIVF_set_nprobe(ivf, np);
      p.sp = (qv_search_params){.k = k, .nprobe = np};
      double sa, sb;
      bench_ab(nq, b, reps, bench_pair_search_quiver, search_faiss, &p, &sa, &sb);
      double qa = nq / sa, qb = nq / sb;
      printf("%-14s %6u %10.0f %10.0f %8.3f %9.4f %9.4f\n", spec, np, qa, qb, qa / qb,
             qv_recall_at_k(p.ia, ds.gt, ds.gk, nq, k), qv_recall_at_k(p.ib, ds.gt, ds.gk, nq, k));
      fflush(stdout);
    }
    free(np_list);
    faiss_Index_free(p.fi);
    qv_collection_close(p.col);
    bench_remove_dir(dir);
  }
  free(spec_list);
  bench_data_free(&ds);
  free(rowids);
  free(p.sc);
  free(p.ia);
  free(p.ib);
  return 0;
}

/* bench/index_compare — Quiver's index layer vs FAISS in-process, on the same index file.
 *
 * For each (spec, nprobe) it builds the collection once with quiver's index/ layer, saves it,
 * loads the saved index.faiss a second time straight through the FAISS C API, and then runs the
 * whole query set through both, alternating A B A B (BENCHMARKING.md), reporting the median QPS of
 * each, their ratio, and recall@k of both against the shipped ground truth.
 *
 *   index_compare --data ../shared/data/sift5k/sift5k --specs IVF64,Flat --nprobes 1,8,32
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

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_io_c.h>

#include "quiver/clock.h"
#include "quiver/collection.h"
#include "quiver/vecfile.h"

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void die(const char *what, const qv_error *e) {
  fprintf(stderr, "index_compare: %s: %s\n", what, e ? e->msg : "");
  exit(1);
}

static float *load_f32(const char *path, size_t *n, size_t *d) {
  qv_vecfile *vf;
  qv_error e = {0};
  if (qv_vecfile_open(&vf, path, &e) != QV_OK)
    die(path, &e);
  *n = qv_vecfile_rows(vf);
  *d = qv_vecfile_cols(vf);
  float *x = malloc(*n * *d * sizeof(float));
  if (!x || qv_vecfile_read_f32(vf, 0, *n, x, &e) != QV_OK)
    die(path, &e);
  qv_vecfile_close(vf);
  return x;
}

static int64_t *load_i64(const char *path, size_t *n, size_t *d) {
  qv_vecfile *vf;
  qv_error e = {0};
  if (qv_vecfile_open(&vf, path, &e) != QV_OK)
    die(path, &e);
  *n = qv_vecfile_rows(vf);
  *d = qv_vecfile_cols(vf);
  int64_t *x = malloc(*n * *d * sizeof(int64_t));
  if (!x || qv_vecfile_read_i64(vf, 0, *n, x, &e) != QV_OK)
    die(path, &e);
  qv_vecfile_close(vf);
  return x;
}

static double recall(const int64_t *ids, const int64_t *gt, size_t gk, size_t n, size_t k) {
  size_t hits = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t a = 0; a < k; a++)
      for (size_t g = 0; g < k; g++)
        if (ids[i * k + a] >= 0 && ids[i * k + a] == gt[i * gk + g]) {
          hits++;
          break;
        }
  return (double)hits / (double)(n * k);
}

int main(int argc, char **argv) {
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
    die("--metric", &e);
  char path[4096];
  size_t nb, d, nq, qd, gn, gk;
  snprintf(path, sizeof path, "%s_base.fvecs", data);
  float *base = load_f32(path, &nb, &d);
  snprintf(path, sizeof path, "%s_query.fvecs", data);
  float *q = load_f32(path, &nq, &qd);
  snprintf(path, sizeof path, "%s%s", data, gt_suffix);
  int64_t *gt = load_i64(path, &gn, &gk);
  if (qd != d || gn < nq || gk < k)
    die("data shapes do not match", NULL);
  int64_t *rowids = malloc(nb * sizeof(int64_t));
  for (size_t i = 0; i < nb; i++)
    rowids[i] = (int64_t)i;
  size_t b = batch ? batch : nq;
  float *sc = malloc(nq * k * sizeof(float));
  int64_t *ia = malloc(nq * k * sizeof(int64_t)), *ib = malloc(nq * k * sizeof(int64_t));
  double *ta = malloc(reps * sizeof(double)), *tb = malloc(reps * sizeof(double));

  printf("# data=%s n=%zu dim=%zu queries=%zu metric=%s k=%zu batch=%zu reps=%zu "
         "omp_threads=%d\n",
         data, nb, d, nq, metric_s, k, b, reps, omp_get_max_threads());
  printf("%-14s %6s %10s %10s %8s %9s %9s\n", "spec", "nprobe", "quiver_qps", "faiss_qps", "ratio",
         "recall_q", "recall_f");
  char *spec_list = strdup(specs);
  for (char *sv = NULL, *spec = strtok_r(spec_list, ";", &sv); spec;
       spec = strtok_r(NULL, ";", &sv)) {
    qv_collection_opts o;
    qv_collection_opts_init(&o);
    o.dim = d;
    o.metric = metric;
    o.spec = spec;
    qv_collection *col;
    char dir[] = "/tmp/quiver-bench-XXXXXX";
    if (mkdtemp(dir) == NULL)
      die("mkdtemp", NULL);
    if (qv_collection_create(&col, &o, &e) || qv_collection_add(col, nb, rowids, base, &e) ||
        qv_collection_build(col, NULL, NULL, &e) || qv_collection_save(col, dir, &e))
      die(spec, &e);
    snprintf(path, sizeof path, "%s/v000001/index.faiss", dir);
    FaissIndex *fi;
    if (faiss_read_index_fname(path, 0, &fi) != 0)
      die("faiss_read_index_fname", NULL);
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(fi);
    char *np_list = strdup(nprobes);
    for (char *nv = NULL, *nps = strtok_r(np_list, ",", &nv); nps; nps = strtok_r(NULL, ",", &nv)) {
      uint32_t np = (uint32_t)strtoul(nps, NULL, 10);
      if (ivf == NULL)
        np = 0;
      else if (np > faiss_IndexIVF_nlist(ivf))
        continue;
      if (ivf)
        faiss_IndexIVF_set_nprobe(ivf, np);
      qv_search_params sp = {.k = k, .nprobe = np};
      for (size_t r = 0; r < reps + 1; r++) { /* rep 0 warms up both */
        double t0 = qv_monotonic_s();
        for (size_t off = 0; off < nq; off += b) {
          size_t m = nq - off < b ? nq - off : b;
          if (qv_collection_search(col, q + off * d, m, &sp, sc + off * k, ia + off * k, &e))
            die("quiver search", &e);
        }
        double t1 = qv_monotonic_s();
        for (size_t off = 0; off < nq; off += b) {
          size_t m = nq - off < b ? nq - off : b;
          if (faiss_Index_search(fi, (idx_t)m, q + off * d, (idx_t)k, sc + off * k, ib + off * k) !=
              0)
            die("faiss search", NULL);
        }
        double t2 = qv_monotonic_s();
        if (r > 0) {
          ta[r - 1] = t1 - t0;
          tb[r - 1] = t2 - t1;
        }
      }
      qsort(ta, reps, sizeof(double), cmp_d);
      qsort(tb, reps, sizeof(double), cmp_d);
      double qa = nq / ta[reps / 2], qb = nq / tb[reps / 2];
      printf("%-14s %6u %10.0f %10.0f %8.3f %9.4f %9.4f\n", spec, np, qa, qb, qa / qb,
             recall(ia, gt, gk, nq, k), recall(ib, gt, gk, nq, k));
      fflush(stdout);
    }
    free(np_list);
    faiss_Index_free(fi);
    qv_collection_close(col);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", dir);
  }
  free(spec_list);
  free(base);
  free(q);
  free(gt);
  free(rowids);
  free(sc);
  free(ia);
  free(ib);
  free(ta);
  free(tb);
  return 0;
}

/* bench/filter_bench — filtered search: QPS and recall@k per selectivity and path.
 *
 * Builds one collection per spec with Quiver's index layer, every item carrying two int64
 * attributes: `bucket`, a hash of its id into 0 .. 9999 (so `bucket < 10 * p` keeps p per mille,
 * independent of the vectors), and, with --labels, `label` (e.g. Fashion-MNIST's class, which the
 * vectors cluster by: a correlated filter). For each selectivity it parses the filter
 * `bucket < N`, takes the exact filtered top-k of every query as ground truth (the exact path's
 * brute force over the matching rows), then times each path over the queries one call per query
 * (the filter parsed per call, as quiverd does per request), reporting QPS (median of --reps
 * passes) and recall@k against that ground truth:
 *   exact  the matching rows scanned exactly
 *   index  an IVF's list scan restricted to the matches / a graph's over-fetch
 *   auto   what a search picks by the estimated selectivity
 *
 *   filter_bench --data ~/.cache/quiver/data/fmnist/fmnist --specs "IVF256,Flat;HNSW32"
 *                --params "6;16" [--labels ~/.cache/quiver/data/fmnist/fmnist_base_labels.ivecs]
 *                [--sels 50,10,1,0.1] [--k 10] [--nq 500] [--reps 3]
 *
 * --params: the search parameter per spec (nprobe for IVF, efSearch for HNSW). Set
 * OMP_NUM_THREADS (the figures print it). */
#define _GNU_SOURCE
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quiver/collection.h"
#include "quiver/vecfile.h"

#include "bench_common.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t mix(uint64_t x) { /* splitmix64's finaliser */
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void check(qv_status st, const qv_error *e, const char *what) {
  if (st != QV_OK)
    bench_die(what, e->msg);
}

/* recall@k of got against want (n x k each), counting only want's real ids. */
static double recall(const int64_t *got, const int64_t *want, size_t n, size_t k) {
  size_t hits = 0, total = 0;
  for (size_t q = 0; q < n; q++)
    for (size_t a = 0; a < k; a++) {
      int64_t w = want[q * k + a];
      if (w < 0)
        continue;
      total++;
      for (size_t b = 0; b < k; b++)
        if (got[q * k + b] == w) {
          hits++;
          break;
        }
    }
  return total ? (double)hits / (double)total : 1.0;
}

typedef struct run {
  qv_collection *c;
  const char *text;
  const float *q;
  size_t nq, d, k;
  uint32_t param;
  qv_filter_path path;
  int64_t *ids;
  float *sc;
} run;

/* One pass: every query in its own call, its filter parsed in the call. */
static double pass(run *r) {
  qv_error e = {0};
  double t0 = now_s();
  for (size_t i = 0; i < r->nq; i++) {
    qv_filter *f = NULL;
    check(qv_filter_parse(r->c, r->text, &f, &e), &e, "parse");
    qv_search_params p = {.k = r->k, .nprobe = r->param, .filter = f, .filter_path = r->path};
    check(
        qv_collection_search(r->c, r->q + i * r->d, 1, &p, r->sc + i * r->k, r->ids + i * r->k, &e),
        &e, "search");
    qv_filter_free(f);
  }
  return now_s() - t0;
}

int main(int argc, char **argv) {
  bench_prog = "filter_bench";
  const char *data = NULL, *specs = "IVF256,Flat;HNSW32", *params = "6;16", *labels = NULL;
  const char *sels = "50,10,1,0.1";
  size_t k = 10, nq = 500, reps = 3;
  static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                       {"specs", required_argument, 0, 's'},
                                       {"params", required_argument, 0, 'p'},
                                       {"labels", required_argument, 0, 'l'},
                                       {"sels", required_argument, 0, 'e'},
                                       {"k", required_argument, 0, 'k'},
                                       {"nq", required_argument, 0, 'n'},
                                       {"reps", required_argument, 0, 'r'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'd':
      data = optarg;
      break;
    case 's':
      specs = optarg;
      break;
    case 'p':
      params = optarg;
      break;
    case 'l':
      labels = optarg;
      break;
    case 'e':
      sels = optarg;
      break;
    case 'k':
      k = strtoul(optarg, NULL, 10);
      break;
    case 'n':
      nq = strtoul(optarg, NULL, 10);
      break;
    case 'r':
      reps = strtoul(optarg, NULL, 10);
      break;
    default:
      fprintf(stderr, "usage: see the header of bench/filter_bench.c\n");
      return 2;
    }
  }
  if (data == NULL || k == 0 || nq == 0 || reps == 0)
    bench_die("usage", "--data PREFIX is required (see the header of bench/filter_bench.c)");
  bench_data ds;
  if (bench_data_load(&ds, data, "_groundtruth.ivecs", 1) != 0)
    bench_die("data", "the data set's files do not fit together");
  if (nq > ds.nq)
    nq = ds.nq;
  int64_t *lab = NULL;
  if (labels != NULL) {
    qv_vecfile *vf = NULL;
    qv_error e = {0};
    check(qv_vecfile_open(&vf, labels, &e), &e, labels);
    if (qv_vecfile_rows(vf) != ds.nb)
      bench_die(labels, "not one label per base vector");
    lab = malloc(ds.nb * sizeof *lab);
    check(qv_vecfile_read_i64(vf, 0, ds.nb, lab, &e), &e, labels);
    qv_vecfile_close(vf);
  }
  int64_t *ids = bench_row_ids(ds.nb), *bucket = malloc(ds.nb * sizeof *bucket);
  for (size_t i = 0; i < ds.nb; i++)
    bucket[i] = (int64_t)(mix((uint64_t)ids[i]) % 10000);
  qv_attr_field schema[2] = {{"bucket", QV_ATTR_INT64}, {"label", QV_ATTR_INT64}};
  qv_attr_column cols[2] = {{"bucket", QV_ATTR_INT64, bucket, NULL, NULL, NULL},
                            {"label", QV_ATTR_INT64, lab, NULL, NULL, NULL}};
  qv_attr_batch batch = {lab ? 2 : 1, cols, NULL};
  int64_t *gt = malloc(nq * k * sizeof *gt), *got = malloc(nq * k * sizeof *got);
  float *sc = malloc(nq * k * sizeof *sc);
  double *times = malloc(reps * sizeof *times);

  printf("# filter_bench: data %s (%zu x %zu, %zu queries of %zu), k %zu, one query per call, "
         "OMP threads %d, median of %zu passes\n",
         data, ds.nb, ds.d, nq, ds.nq, k, omp_get_max_threads(), reps);
  printf("# filter 'bucket < N': bucket = hash(id) mod 10000 (independent of the vectors)%s\n",
         lab ? "; 'label = 3': the items' class (correlated with the vectors)" : "");
  printf("%-14s %6s %-12s %7s %-6s %10s %9s\n", "spec", "param", "filter", "matches", "path", "QPS",
         "recall@k");
  char spec_buf[512], param_buf[256];
  snprintf(spec_buf, sizeof spec_buf, "%s", specs);
  snprintf(param_buf, sizeof param_buf, "%s", params);
  char *ss = NULL, *ps = NULL;
  char *spec = strtok_r(spec_buf, ";", &ss), *param_s = strtok_r(param_buf, ";", &ps);
  for (; spec != NULL; spec = strtok_r(NULL, ";", &ss), param_s = strtok_r(NULL, ";", &ps)) {
    const uint32_t param = param_s ? (uint32_t)strtoul(param_s, NULL, 10) : 0;
    qv_collection_opts o;
    qv_collection_opts_init(&o);
    o.dim = ds.d;
    o.spec = spec;
    o.device = QV_DEVICE_CPU;
    o.n_attrs = lab ? 2 : 1;
    o.attrs = schema;
    qv_collection *c = NULL;
    qv_error e = {0};
    check(qv_collection_create(&c, &o, &e), &e, spec);
    check(qv_collection_upsert(c, ds.nb, ids, ds.base, NULL, &batch, &e), &e, "upsert");
    check(qv_collection_build(c, NULL, NULL, &e), &e, "build");
    char list[256];
    snprintf(list, sizeof list, "%s%s", sels, lab ? ",label" : "");
    char *ls = NULL;
    for (char *sel_s = strtok_r(list, ",", &ls); sel_s; sel_s = strtok_r(NULL, ",", &ls)) {
      char text[64];
      if (strcmp(sel_s, "label") == 0)
        snprintf(text, sizeof text, "label = 3");
      else
        snprintf(text, sizeof text, "bucket < %d", (int)(strtod(sel_s, NULL) * 100.0 + 0.5));
      qv_filter *f = NULL;
      check(qv_filter_parse(c, text, &f, &e), &e, text);
      uint64_t nmatch = 0;
      check(qv_collection_filter_count(c, f, &nmatch, &e), &e, "count");
      qv_search_params gp = {.k = k, .filter = f};
      check(qv_collection_search_exact(c, ds.q, nq, &gp, sc, gt, &e), &e, "ground truth");
      qv_filter_free(f);
      static const char *const names[] = {"auto", "exact", "index"};
      for (int path = 1; path <= 3; path++) {
        const qv_filter_path fp = path == 3 ? QV_FILTER_AUTO : (qv_filter_path)path;
        /* A graph's forced index path at a tiny selectivity asks for k' in the tens of
         * thousands (a walk of the whole graph per query, efSearch = k'): not timed. */
        const double kprime = 1.5 * (double)k * (double)ds.nb / (double)(nmatch ? nmatch : 1);
        if (fp == QV_FILTER_INDEX && qv_spec_is_graph(spec) && kprime > 4096.0) {
          printf("%-14s %6u %-12s %7llu %-6s %10s %9s  (k' ~ %.0f: not timed)\n", spec, param, text,
                 (unsigned long long)nmatch, names[fp], "-", "-", kprime);
          continue;
        }
        run r = {c, text, ds.q, nq, ds.d, k, param, fp, got, sc};
        pass(&r); /* warm-up */
        for (size_t i = 0; i < reps; i++)
          times[i] = pass(&r);
        const double t = bench_median(times, reps);
        printf("%-14s %6u %-12s %7llu %-6s %10.0f %9.4f\n", spec, param, text,
               (unsigned long long)nmatch, names[fp], (double)nq / t, recall(got, gt, nq, k));
        fflush(stdout);
      }
    }
    qv_collection_close(c);
  }
  free(gt);
  free(got);
  free(sc);
  free(times);
  free(ids);
  free(bucket);
  free(lab);
  bench_data_free(&ds);
  return 0;
}

#include "bench_common.h"

#include "quiver/fsutil.h"

#include <stdio.h>
#include <stdlib.h>

#include "quiver/clock.h"
#include "quiver/vecfile.h"

const char *bench_prog = "bench";

_Noreturn void bench_die(const char *what, const char *msg) {
  fprintf(stderr, "%s: %s: %s\n", bench_prog, what, msg ? msg : "");
  exit(1);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_d);
  return v[n / 2];
}

/* A whole file as float32 (ints 0) or int64 (ints 1). */
static void *load(const char *path, int ints, size_t *n, size_t *d) {
  qv_vecfile *vf;
  qv_error e = {0};
  if (qv_vecfile_open(&vf, path, &e) != QV_OK)
    bench_die(path, e.msg);
  *n = qv_vecfile_rows(vf);
  *d = qv_vecfile_cols(vf);
  void *x = malloc(*n * *d * (ints ? sizeof(int64_t) : sizeof(float)));
  if (x == NULL || (ints ? qv_vecfile_read_i64(vf, 0, *n, x, &e)
                         : qv_vecfile_read_f32(vf, 0, *n, x, &e)) != QV_OK)
    bench_die(path, e.msg);
  qv_vecfile_close(vf);
  return x;
}

int bench_data_load(bench_data *s, const char *prefix, const char *gt_suffix, size_t k) {
  char path[QV_PATH_MAX];
  size_t qd, gn;
  qv_path_fmt(path, NULL, "%s_base.fvecs", prefix);
  s->base = load(path, 0, &s->nb, &s->d);
  qv_path_fmt(path, NULL, "%s_query.fvecs", prefix);
  s->q = load(path, 0, &s->nq, &qd);
  qv_path_fmt(path, NULL, "%s%s", prefix, gt_suffix);
  s->gt = load(path, 1, &gn, &s->gk);
  return qd != s->d || gn < s->nq || s->gk < k ? -1 : 0;
}

void bench_data_free(bench_data *s) {
  free(s->base);
  free(s->q);
  free(s->gt);
}

int64_t *bench_row_ids(size_t n) {
  int64_t *ids = malloc(n * sizeof *ids);
  for (size_t i = 0; ids != NULL && i < n; i++)
    ids[i] = (int64_t)i;
  return ids;
}

void bench_ab(size_t n, size_t batch, size_t reps, bench_search_fn a, bench_search_fn b, void *ctx,
              double *sa, double *sb) {
  double *ta = malloc(reps * sizeof *ta), *tb = malloc(reps * sizeof *tb);
  if (ta == NULL || tb == NULL)
    bench_die("timing", "out of memory");
  for (size_t r = 0; r < reps + 1; r++) {
    double t0 = qv_monotonic_s();
    for (size_t off = 0; off < n; off += batch)
      a(ctx, off, n - off < batch ? n - off : batch);
    double t1 = qv_monotonic_s();
    for (size_t off = 0; off < n; off += batch)
      b(ctx, off, n - off < batch ? n - off : batch);
    double t2 = qv_monotonic_s();
    if (r > 0) {
      ta[r - 1] = t1 - t0;
      tb[r - 1] = t2 - t1;
    }
  }
  *sa = bench_median(ta, reps);
  *sb = bench_median(tb, reps);
  free(ta);
  free(tb);
}

void bench_remove_dir(const char *dir) {
  qv_error e = {0};
  if (qv_remove_tree(dir, &e) != QV_OK)
    fprintf(stderr, "could not remove %s: %s\n", dir, e.msg);
}

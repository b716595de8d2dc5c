/* What the benchmark programs share: their error exit, medians, recall@k, the data sets' files and
 * the A B A B timing loop (BENCHMARKING.md). Links against quiver_core only. */
#ifndef QUIVER_BENCH_COMMON_H
#define QUIVER_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/eval.h"

/* The program's name, first in bench_die's line: a main that calls bench_die sets it. */
extern const char *bench_prog;

/* Prints "<bench_prog>: <what>: <msg>" (msg NULL: nothing after the colon) and exits 1. */
_Noreturn void bench_die(const char *what, const char *msg);

/* Sorts v[0..n) (n > 0) in place and returns v[n / 2]. */
double bench_median(double *v, size_t n);

/* A data set of ../shared/data: PREFIX_base.fvecs, PREFIX_query.fvecs and PREFIX<gt suffix>. */
typedef struct bench_data {
  float *base, *q;
  int64_t *gt;
  size_t nb, d, nq, gk;
} bench_data;

/* Reads the three files whole (bench_die names the file that cannot be read). Returns 0, or -1
 * when their shapes do not fit: queries of another dimension, or ground truth with fewer than nq
 * rows or k columns. */
int bench_data_load(bench_data *s, const char *prefix, const char *gt_suffix, size_t k);
void bench_data_free(bench_data *s);

/* 0, 1, ..., n - 1: the ids of a base added in row order. */
int64_t *bench_row_ids(size_t n);

/* One side of an A/B comparison: searches queries [off, off + m) (bench_die on an error). */
typedef void (*bench_search_fn)(void *ctx, size_t off, size_t m);

/* Runs a, then b, over n queries in calls of at most batch, reps + 1 times: A B A B, the first
 * round warming both up and not counted. *sa and *sb: the median seconds of a pass of each. */
void bench_ab(size_t n, size_t batch, size_t reps, bench_search_fn a, bench_search_fn b, void *ctx,
              double *sa, double *sb);

/* rm -rf dir; a line on stderr when that fails. */
void bench_remove_dir(const char *dir);

#endif

/* Quiver's collection beside FAISS on the same index, for index_compare and gpu_search: the
 * collection built and saved (FAISS then reads the saved index.faiss) and the quiver side of
 * bench_ab. Links against quiver_index. */
#ifndef QUIVER_BENCH_PAIR_H
#define QUIVER_BENCH_PAIR_H

#include <stddef.h>
#include <stdint.h>

#include <faiss/c_api/Index_c.h>

#include "quiver/collection.h"

/* What both sides of a row search with: the same queries, each side's ids into its own array. */
typedef struct bench_pair {
  qv_collection *col;
  FaissIndex *fi; /* the FAISS side */
  const float *q;
  size_t d, k;
  qv_search_params sp;
  float *sc;        /* scores of either side (not compared) */
  int64_t *ia, *ib; /* ids: quiver's, FAISS's */
} bench_pair;

/* Builds p->col with o over base (nb rows, ids) and saves it in dir (bench_die naming o->spec on
 * a failure); path: the saved index.faiss. */
void bench_pair_build(bench_pair *p, const qv_collection_opts *o, const float *base, size_t nb,
                      const int64_t *ids, const char *dir, char *path, size_t path_size);

/* The quiver side for bench_ab: ctx is a bench_pair. */
void bench_pair_search_quiver(void *ctx, size_t off, size_t m);

#endif

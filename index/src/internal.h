/* Private to index/: the collection struct and helpers shared by its source files. */
#ifndef QUIVER_INDEX_INTERNAL_H
#define QUIVER_INDEX_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <faiss/c_api/Index_c.h>

#include "idmap.h"
#include "quiver/collection.h"

/* A parsed, validated index spec. */
typedef struct qv__spec {
  char text[QV_MAX_SPEC];        /* as the user wrote it (trimmed) */
  char factory[QV_MAX_SPEC + 8]; /* what FAISS's index_factory gets */
  uint32_t nlist;                /* 0 when not IVF */
  size_t train_min;              /* fewest vectors a build accepts */
  size_t code_bytes;             /* bytes per vector in the index (for memory figures) */
} qv__spec;

struct qv_collection {
  size_t dim;
  qv_metric metric;
  qv__spec spec;
  uint32_t default_nprobe;
  size_t train_sample;
  uint64_t seed;

  FaissIndex *index; /* never NULL after create/open */
  int trained;
  uint64_t version; /* +1 per successful build */

  /* The store: row r holds ids[r], vecs[r * dim ...] and feats[r * n_features ...]. */
  size_t n_features;
  float *feats; /* NULL when n_features == 0 */
  float *vecs;
  int64_t *ids;
  size_t count, cap;
  qv__idmap map;

  pthread_rwlock_t rw; /* readers: searches; writer: the short mutations */
  pthread_mutex_t wmu; /* serialises writers (add, delete, build, save) */
};

qv_status qv__spec_parse(const char *text, size_t dim, qv__spec *out, qv_error *err);
/* Makes an empty FAISS index for the spec. */
qv_status qv__index_new(const qv__spec *s, size_t dim, qv_metric metric, FaissIndex **out,
                        qv_error *err);
/* Sets what our search path needs on an IVF index (nprobe = nlist, see search.c). */
void qv__index_prepare(FaissIndex *idx, const qv__spec *s);
/* Copies FAISS's last error (thread-local in FAISS) into err at once. */
qv_status qv__faiss_fail(qv_error *err, qv_status code, const char *what);
/* Allocates an empty collection with locks initialised (no index). */
qv_status qv__collection_alloc(qv_collection **out, qv_error *err);
/* Grows the store to hold `n` rows. */
qv_status qv__store_reserve(qv_collection *c, size_t n, qv_error *err);

#endif

/* Private to index/: the collection struct and helpers shared by its source files. */
#ifndef QUIVER_INDEX_INTERNAL_H
#define QUIVER_INDEX_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <faiss/c_api/Index_c.h>

#include "attrs.h"
#include "gpu.h"
#include "idmap.h"
#include "quiver/collection.h"
#include "quiver/fsutil.h"
#include "wal.h"

#define QV__NOTE 192 /* == sizeof qv_collection_stats.placement */

/* A parsed, validated index spec. */
typedef struct qv__spec {
  char text[QV_MAX_SPEC];        /* as the user wrote it (trimmed) */
  char factory[QV_MAX_SPEC + 8]; /* what FAISS's index_factory gets */
  uint32_t nlist;                /* 0 when not IVF */
  size_t train_min;              /* fewest vectors a build accepts */
  size_t code_bytes;             /* bytes per vector in the index (for memory figures) */
  /* HNSW<M>[,SQ8]: a graph index (IDMap over FAISS's IndexHNSW). Its search parameter is
   * efSearch (carried where an IVF's nprobe is), it has no removal (deletes and replacements
   * are always tombstones; folding them re-adds the store into a reset copy), and no GPU index. */
  int graph;
  uint32_t hnsw_m;
  /* IVF<n>,PQ<m>x4fs: IVF with 4-bit PQ codes scanned in SIMD registers (FAISS's
   * IndexIVFPQFastScan). FAISS 1.7.3 keeps its nprobe in the index (no search_preassigned), has
   * no removal from its block lists and no GPU version: nprobe goes through the gate, deletes
   * are tombstones, it serves from the CPU. */
  int fastscan;
} qv__spec;

/* Specs whose search parameter is a field of the index (set through a gate), which cannot
 * remove entries and which have no GPU index in FAISS 1.7.3. */
static inline int qv__spec_gated(const qv__spec *s) {
  return s->graph || s->fastscan;
}

/* A graph index's efSearch is a field of the index (FAISS 1.7.3's C API has no per-call search
 * parameters): searches with one value run together, one with another waits until they are done
 * and sets it (a waiter closes the gate to newcomers, so that neither value starves). */
typedef struct qv__gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int cur; /* the efSearch set on the index; 0: unknown (a new index) */
  int users, closing;
} qv__gate;

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
  /* The data version (a rollout's generation, quiver/collection.h): 1 at create, moved only by
   * its owner (qv_collection_set_generation) and swapped with the rest of the state by a
   * replace. Read under rw. */
  uint64_t generation;

  /* The store: row r holds ids[r], vecs[r * dim ...] and feats[r * n_features ...]. */
  size_t n_features;
  float *feats; /* NULL when n_features == 0 */
  float *vecs;
  int64_t *ids;
  size_t count, cap;
  qv__idmap map;
  /* Item attributes, row-aligned with the store (attrs.h); their schema is fixed at create. */
  qv__attrs attrs;
  uint64_t filtered_exact, filtered_index, filtered_retries; /* atomics: filtered queries */

  /* Where searches run (quiver/gpu.h). The CPU index is always there and takes every write;
   * gpu, when set, is a copy on a device that answers searches it can. */
  qv_device device;       /* as asked */
  qv__gpu_index *gpu;     /* NULL: searches run on the CPU index */
  char placement[192];    /* why it serves where it does */
  uint64_t gpu_fallbacks; /* searches the GPU copy could not answer (served by the CPU) */

  /* Tombstones: in deferred mode (deferred_deletes, or a GPU copy, whose FAISS index has no
   * remove_ids: faiss#584) deletes and replacements leave the old entries in the indexes and
   * record the id here; searches over-fetch by n_dead, drop deleted ids and re-score replaced
   * ones exactly from the store. A save or build folds them away. */
  int deferred;   /* deferred_deletes asked */
  qv__idmap tomb; /* id -> QV__TOMB_DELETED or QV__TOMB_REPLACED */
  size_t n_dead;  /* stale entries in the index(es) */

  /* Write-ahead log (wal.c): NULL until qv_collection_wal_attach. wal_seq is the last record
   * applied; a save records it in the manifest, so replay skips what the snapshot holds. */
  struct qv__wal *wal;
  uint64_t wal_seq;
  char wal_dir[QV_PATH_MAX];

  /* On disk (persist.c): the version this object was opened from or last saved to disk_dir, how
   * many versions a save keeps, and why an older version was opened (empty normally). */
  uint64_t disk_version;
  char disk_dir[QV_PATH_MAX];
  uint32_t keep_versions;
  char open_note[QV__NOTE + QV_ERROR_MSG_MAX];
  /* The last build's measured recall@k against exact search (-1: not measured) and its k. */
  double build_recall;
  uint32_t build_recall_k, build_nprobe;
  /* While a build runs (build.c) writers go on: each id they touch is recorded here and the new
   * index catches up on them before the swap. touched_lost: one could not be recorded. */
  int building;
  qv__idmap touched;
  int touched_lost;

  qv__gate gate;       /* a graph index's efSearch (reset to unknown when the index changes) */
  pthread_rwlock_t rw; /* readers: searches; writer: the short mutations */
  pthread_mutex_t wmu; /* serialises writers (add, delete, build, a save's snapshot) */
  pthread_mutex_t smu; /* serialises saves (taken before wmu) */
};

#define QV__TOMB_DELETED 1
#define QV__TOMB_REPLACED 2

/* 1 when writes leave tombstones instead of removing from the index. */
static inline int qv__deferred(const qv_collection *c) {
  return c->deferred || c->gpu != NULL || c->n_dead > 0 || qv__spec_gated(&c->spec);
}

/* Bytes a GPU copy of idx is expected to take (codes, ids, centroids, with headroom). */
size_t qv__gpu_need_bytes(const qv_collection *c, FaissIndex *idx);
/* Decides where idx (about to serve c) lives: *gpu gets a device copy or NULL, note (QV__NOTE
 * bytes) the reason. `replacing` is the copy the new one will replace (its budget counts as free
 * on its device), or NULL. A hard error (QV_ENOMEM, QV_EPRECONDITION) only when c->device is GPU
 * and the GPU context does not allow falling back to the CPU. The caller holds c->wmu; it
 * publishes note into c->placement under c->rw when the object is shared. */
qv_status qv__place(qv_collection *c, FaissIndex *idx, qv__gpu_index *replacing,
                    qv__gpu_index **gpu, char *note, qv_error *err);
/* Removes tombstoned entries from the CPU index and re-adds replaced ids from the store, so the
 * CPU index is exact again; clears the tombstones unless a GPU copy still holds stale entries.
 * The caller holds c->wmu, not c->rw. */
qv_status qv__fold_tombstones(qv_collection *c, qv_error *err);

/* One search of `index` (made for spec, dimension d), nprobe resolved (1 .. nlist; unused for
 * Flat; efSearch for a graph, set through gate, or directly when gate is NULL: an index no other
 * thread searches); only reads the index otherwise (see search.c). FAISS's padding is left as it
 * is. */
qv_status qv__index_search(FaissIndex *index, const qv__spec *spec, size_t d, const float *q,
                           size_t n, size_t k, uint32_t nprobe, qv__gate *gate, float *scores,
                           int64_t *ids, qv_error *err);
void qv__gate_init(qv__gate *g);
void qv__gate_fini(qv__gate *g);
/* A graph index was swapped in (the caller holds c->rw for writing: no search is in the gate). */
static inline void qv__gate_reset(qv__gate *g) {
  g->cur = 0;
}
/* Exact top-k of n queries over nb vectors (vecs, with ids vids) through kernels/. */
qv_status qv__exact_search(qv_metric metric, const float *vecs, const int64_t *vids, size_t nb,
                           size_t d, const float *q, size_t n, size_t k, float *scores,
                           int64_t *ids, qv_error *err);
/* Removes ids from index (one scan of the lists); absent ids are skipped. */
qv_status qv__index_remove(FaissIndex *index, size_t n, const int64_t *ids, qv_error *err);

qv_status qv__spec_parse(const char *text, size_t dim, qv__spec *out, qv_error *err);
/* Makes an empty FAISS index for the spec. */
qv_status qv__index_new(const qv__spec *s, size_t dim, qv_metric metric, FaissIndex **out,
                        qv_error *err);
/* Walks an index.faiss file before FAISS reads it (faissfile.c): every count must fit the bytes
 * that follow and agree with dim and the spec's nlist (0 = Flat). QV_OK or QV_ECORRUPT saying
 * what is wrong; QV_EIO when it cannot be mapped. */
qv_status qv__faiss_file_check(const char *path, size_t dim, const qv__spec *spec, qv_error *err);

/* Checks the structure of an index read from a file before anything touches it (validate.c):
 * dimension, ntotal against the store's count, an IDMap's id map and flat index, an IVF's coarse
 * quantizer against its lists and the sum of its list sizes, every id >= 0, unique and, with
 * store given, in it. QV_OK, QV_ECORRUPT naming what is wrong, or QV_ENOMEM. */
qv_status qv__index_validate(FaissIndex *idx, const qv__spec *spec, size_t dim, uint64_t count,
                             const qv__idmap *store, qv_error *err);
/* Sets what our search path needs on an IVF index (nprobe = nlist, see search.c). */
void qv__index_prepare(FaissIndex *idx, const qv__spec *s);
/* Copies FAISS's last error (thread-local in FAISS) into err at once. */
qv_status qv__faiss_fail(qv_error *err, qv_status code, const char *what);
/* Allocates an empty collection with locks initialised (no index). */
qv_status qv__collection_alloc(qv_collection **out, qv_error *err);
/* Rebuilds the attributes' sorted columns (attrs.h) from the store: the caller holds c->wmu;
 * they are made beside searches and put in under c->rw. Out of memory keeps the old ones. */
void qv__attrs_resort(qv_collection *c);
/* Grows the store to hold `n` rows. */
qv_status qv__store_reserve(qv_collection *c, size_t n, qv_error *err);
/* blas.c: a build or replace starts (+1) or ends (-1); BLAS uses every core while one runs. */
void qv__blas_build(int delta);

#endif

/* A collection: the vectors of one embedding space, an IVF (or flat) index over them built with
 * FAISS, and their persistence.
 *
 * What it holds
 *   - The full-precision vectors with their 64-bit ids (the store), kept beside the index so that
 *     exact search, reranking and rebuilds never depend on the index's (possibly lossy) codes.
 *   - A FAISS index made from an index-factory spec. Supported specs (the contract we test):
 *       "Flat"              exact search, no training
 *       "IVF<n>,Flat"       inverted lists of raw vectors
 *       "IVF<n>,SQ8"        ... of 8-bit scalar-quantised vectors (also SQ4, SQ6, SQfp16)
 *       "IVF<n>,PQ<m>"      ... of product-quantised codes (m sub-quantisers, 8 bits; m | dim),
 *                           also "IVF<n>,PQ<m>x<b>" for b bits (4..8)
 *       "HNSW<M>"           a graph (FAISS IndexHNSWFlat, M links per node, 4..128) over the full
 *                           vectors: searchable from the start, no training
 *       "HNSW<M>,SQ8"       ... over 8-bit scalar-quantised codes (trained by a build)
 *     with 1 <= n <= 65536. Anything else is QV_EINVAL. Graphs serve from the CPU only (FAISS
 *     1.7.3 has no GPU graph index: device gpu is QV_EINVAL); their search parameter is efSearch,
 *     carried in the nprobe fields (qv_search_params.nprobe, default_nprobe, the tuning of a
 *     build's target_recall); they cannot remove entries, so deletes and replacements are always
 *     tombstones, and a save or build with tombstones makes the graph again from the store.
 *     Searches with one efSearch run together; one with another value waits for them to finish
 *     (FAISS 1.7.3 keeps efSearch in the index, not per call). An add links its batch into the
 *     graph while searches wait.
 *
 * Ids: any int64 >= 0, chosen by the caller. Adding an id that exists replaces its vector
 * (upsert). -1 is reserved for "no result".
 *
 * Scores: see quiver/types.h (L2: squared distance, ascending; IP and cosine: similarity,
 * descending). Cosine collections normalise vectors on add and queries on search.
 *
 * Lifecycle
 *   qv_collection_create (empty, in memory) or qv_collection_open (from a directory)
 *   -> qv_collection_add / _delete / _build / _search ... -> qv_collection_save -> _close.
 *   An IVF spec needs training: vectors added before the first build are stored but not yet
 *   searchable through the index (qv_collection_search answers QV_EPRECONDITION; exact search
 *   works);
 qv_collection_build trains on a sample of the stored vectors and indexes all of them;
 *vectors added after a build go into the index at once."Flat" is searchable from the start.**
      Thread safety *Any number of threads may
      search(qv_collection_search, _search_exact, _stats) at once. Writers
 *   (add, delete, build, save) are serialised among themselves. Add and delete exclude searches
 *   only while they modify memory (one call's batch); build trains and fills the new index while
 *   searches go on against the old one, and excludes them only for the pointer swap; save excludes
 *   writers only while it copies the collection. Close must not race with any other call.
 */
#ifndef QUIVER_COLLECTION_H
#define QUIVER_COLLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/attrs.h"
#include "quiver/gpu.h"
#include "quiver/status.h"
#include "quiver/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hard limits of the index layer (the server applies its own, smaller, configurable ones). */
#define QV_MAX_DIM 65536
#define QV_MAX_K 65536
#define QV_MAX_NLIST 65536
#define QV_MAX_SPEC 128
#define QV_MAX_EF_SEARCH 65536  /* a graph index's efSearch (qv_search_params.nprobe) */
#define QV_MAX_ITEM_FEATURES 64 /* == QV_MAX_FEATURES of quiver/rerank_params.h */
typedef struct qv_collection qv_collection;
struct qv_rerank_params; /* quiver/rerank_params.h */

/* Creation options. Initialise with qv_collection_opts_init, then set what differs. */
typedef struct qv_collection_opts {
  size_t dim;                 /* 1 .. QV_MAX_DIM; no default (0 is refused) */
  qv_metric metric;           /* default QV_METRIC_L2 */
  const char *spec;           /* index-factory spec (above); default "Flat"; copied */
  uint32_t default_nprobe;    /* lists probed when a search passes nprobe 0; default 16, clamped
                                 to nlist at search time (a graph: its default efSearch) */
  size_t train_sample;        /* most vectors used to train; 0 = 256 per list (FAISS's own cap),
                                 default 0 */
  uint64_t seed;              /* seed of the training sample; default 1234 */
  size_t n_features;          /* per-item features for the rerank blend, 0 .. 64; default 0 */
  qv_device device;           /* where searches run (quiver/gpu.h); default QV_DEVICE_AUTO */
  int deferred_deletes;       /* 1: deletes and replacements are hidden by tombstones until the next
                                 save or build instead of being removed from the IVF lists at once
                                 (FAISS's remove_ids scans every list). Always so while a GPU copy
                                 exists. Default 0 */
  size_t n_attrs;             /* item attributes (quiver/attrs.h), 0 .. QV_MAX_ATTRS; default 0 */
  const qv_attr_field *attrs; /* their schema (copied) */
} qv_collection_opts;

QV_API void qv_collection_opts_init(qv_collection_opts *o);

/* Creates an empty in-memory collection. On failure *out is NULL.
 * Returns QV_OK; QV_EINVAL (dim 0 or too large, bad metric, unsupported spec, PQ m not dividing
 * dim, nlist out of range); QV_ENOMEM; QV_EINTERNAL (FAISS refused the spec: message from FAISS).
 */
QV_API qv_status qv_collection_create(qv_collection **out, const qv_collection_opts *o,
                                      qv_error *err);

/* Opens a collection saved by qv_collection_save. Verifies the manifest, every file's size and
 * CRC-32, the index's dimension, metric and count against the manifest and the stored vectors.
 * Never serves a version that fails a check: when the newest fails, the newest older version kept
 * in the directory that passes is opened instead (stats.open_note says so; attaching the
 * write-ahead log then replays the writes made since that version). On failure *out is NULL and
 * the error is the newest version's.
 * Returns QV_OK; QV_ENOTFOUND (no such directory, or no MANIFEST.json in it); QV_ECORRUPT
 * (truncated or corrupt file, inconsistent manifest; the message names the file); QV_EUNSUPPORTED
 * (a newer format version); QV_EIO; QV_ENOMEM. */
QV_API qv_status qv_collection_open(qv_collection **out, const char *dir, qv_error *err);

/* Frees everything. NULL is allowed. */
QV_API void qv_collection_close(qv_collection *c);

/* Upserts n vectors (n x dim floats, row-major) with their ids. Validates the whole batch before
 * changing anything: an error leaves the collection as it was. Within one batch a repeated id
 * keeps its last vector.
 * Returns QV_OK; QV_EINVAL (NULL pointer, negative id, NaN/Inf component, zero vector for cosine;
 * the message names the row); QV_ENOMEM; QV_EINTERNAL (FAISS error). */
QV_API qv_status qv_collection_add(qv_collection *c, size_t n, const int64_t *ids,
                                   const float *vectors, qv_error *err);

/* As qv_collection_add, with each item's features (n x n_features floats, row-major; NULL = all
 * zeros). Features are stored and persisted beside the vector and feed the rerank blend.
 * Returns what qv_collection_add returns; QV_EINVAL also for a NaN/Inf feature. */
QV_API qv_status qv_collection_add_features(qv_collection *c, size_t n, const int64_t *ids,
                                            const float *vectors, const float *features,
                                            qv_error *err);

/* As qv_collection_add_features, with each item's attributes (quiver/attrs.h; NULL or no
 * columns = every attribute its default). The attributes go into the write-ahead log and the
 * store with the vector, in the same step. Returns what qv_collection_add_features returns;
 * QV_EINVAL also for a column of no attribute, of the wrong type, or of a bad value (the message
 * names the column and row). */
QV_API qv_status qv_collection_upsert(qv_collection *c, size_t n, const int64_t *ids,
                                      const float *vectors, const float *features,
                                      const qv_attr_batch *attrs, qv_error *err);

/* The checks qv_collection_upsert makes of attributes for a schema (without a collection: a
 * router checks what it logs). QV_OK or QV_EINVAL with the same message. */
QV_API qv_status qv_attr_batch_check(size_t n_fields, const qv_attr_field *fields, size_t n,
                                     const qv_attr_batch *attrs, qv_error *err);

/* The checks qv_collection_add_features makes of a batch before it changes anything (negative
 * ids, NaN/Inf components, zero vectors for cosine, NaN/Inf features), without a collection: a
 * router checks what it logs for its shards as their collections will. QV_OK or QV_EINVAL with
 * the same message. */
QV_API qv_status qv_rows_check(size_t dim, qv_metric metric, size_t n_features, size_t n,
                               const int64_t *ids, const float *vectors, const float *features,
                               qv_error *err);

/* Deletes the given ids; ids that are not present are skipped. *n_deleted (may be NULL) gets how
 * many were removed. Returns QV_OK; QV_EINVAL (NULL ids with n > 0); QV_EINTERNAL. */
QV_API qv_status qv_collection_delete(qv_collection *c, size_t n, const int64_t *ids,
                                      size_t *n_deleted, qv_error *err);

/* Progress of a build: phase is "sample", "train" or "add"; done <= total. Return non-zero to
 * cancel the build (it then returns QV_ECANCELLED and the old index stays). Called on the
 * building thread. */
typedef int (*qv_progress_fn)(void *user, const char *phase, uint64_t done, uint64_t total);

/* Trains a fresh index from a sample of the stored vectors, adds all stored vectors to it, and
 * swaps it in. Searches keep running against the previous index until the swap, and writes keep
 * being accepted: the build works on a copy of the store taken at its start, and the ids written
 * meanwhile are re-applied to the new index just before the swap (writers wait only for that and
 * for the swap itself). One build at a time per collection.
 * Returns QV_OK; QV_EPRECONDITION (too few vectors to train: IVF needs at least nlist, PQ at
 * least 2^bits; another build is running; the recall floor was not met); QV_ECANCELLED;
 * QV_ENOMEM (also: over the memory budget); QV_EINTERNAL (FAISS error, message from FAISS). */
QV_API qv_status qv_collection_build(qv_collection *c, qv_progress_fn progress, void *user,
                                     qv_error *err);

/* What a build checks and tunes before it swaps the new index in. Initialise with
 * qv_build_opts_init. Recall is measured on eval_queries stored vectors (a seeded sample) used as
 * queries: recall@eval_k of the new index against exact search over the store, each query's own
 * id left out of both lists. */
typedef struct qv_build_opts {
  double recall_floor;    /* (0, 1]: refuse the swap (QV_EPRECONDITION, the old index stays)
                             when the measured recall is below it; 0 = no floor (default) */
  double target_recall;   /* (0, 1]: pick the smallest nprobe whose recall reaches it and make
                             it the collection's default_nprobe (nlist when none does); the floor
                             is then checked at that nprobe. 0 = keep default_nprobe (default) */
  uint32_t eval_queries;  /* 1 .. 100000, default 200 (fewer when the collection is smaller) */
  uint32_t eval_k;        /* 1 .. 1024, default 10 */
  uint64_t memory_budget; /* bytes the collection may hold during the build (its store and index,
                             the build's copy of the store and the new index); 0 = unlimited.
                             Over it: QV_ENOMEM before any work */
} qv_build_opts;

QV_API void qv_build_opts_init(qv_build_opts *o);
/* QV_OK, or QV_EINVAL saying which option is out of range. */
QV_API qv_status qv_build_opts_check(const qv_build_opts *o, qv_error *err);

typedef struct qv_build_report {
  double recall; /* recall@k measured on the sample (-1: not measured) */
  uint32_t recall_k;
  uint32_t recall_nprobe; /* the nprobe it was measured at (0 for Flat) */
  uint32_t eval_queries;  /* sample size used */
  uint32_t tuned_nprobe;  /* the new default_nprobe when target_recall was given, else 0 */
  int target_reached;     /* 1 when tuned_nprobe reaches target_recall */
  uint64_t caught_up;     /* ids written during the build and re-applied before the swap */
  uint64_t memory_needed; /* bytes the build estimated it needs (see memory_budget) */
  double seconds;         /* the whole build */
} qv_build_report;

/* Estimated bytes a build of c needs at its peak (as memory_budget counts them). */
QV_API uint64_t qv_collection_build_memory(qv_collection *c);

/* qv_collection_build with options (NULL = defaults) and a report (may be NULL). */
QV_API qv_status qv_collection_build_ex(qv_collection *c, const qv_build_opts *o,
                                        qv_progress_fn progress, void *user, qv_build_report *rep,
                                        qv_error *err);

/* Replaces c's whole state (vectors, features, ids, index, spec, default nprobe) with src's, in
 * one swap like a build's: searches go on against the old state until it. dim and metric must be
 * equal and src must be built; n_features may differ only when src has none. src is left
 * holding c's old state (close it). c's write-ahead log stays attached; save c afterwards so that
 * a restart does not replay older writes on top. o (may be NULL) checks recall like a build
 * (target_recall tunes default_nprobe); rep may be NULL.
 * Returns QV_OK; QV_EINVAL (dim, metric or features differ; the message says which);
 * QV_EPRECONDITION (src not built, a build is running, recall floor not met); QV_ENOMEM. */
QV_API qv_status qv_collection_replace(qv_collection *c, qv_collection *src, const qv_build_opts *o,
                                       qv_build_report *rep, qv_error *err);

/* Gives dst the attributes `from` holds for the ids both have: dst takes from's schema when it
 * has none (its items then get defaults first), else the schemas must be equal; items of dst
 * that from does not hold keep theirs. For an import that replaces or stages a version of a
 * collection from files without attributes (call it on the imported state before
 * qv_collection_replace). Both are locked (dst's writers, from's readers) while it runs.
 * Returns QV_OK; QV_EINVAL (other schemas, NULL); QV_ENOMEM. */
QV_API qv_status qv_collection_adopt_attrs(qv_collection *dst, qv_collection *from, qv_error *err);

/* Exchanges the whole states of a and b (vectors, features, ids, index, its GPU copy, spec,
 * default nprobe, tombstones, data version, build counter and recall) at once, without copying
 * or measuring anything: a server's flip between two versions of one collection, each of which
 * searches went on against until the swap. Each object keeps its write-ahead log, its directory
 * and its device ask. dim, metric and n_features must be equal and both built.
 * Returns QV_OK; QV_EINVAL (they differ; the message says how); QV_EPRECONDITION (a build of
 * either is running, or one is not built). */
QV_API qv_status qv_collection_swap(qv_collection *a, qv_collection *b, qv_error *err);

/* The threads FAISS's BLAS uses while only searches run. OpenBLAS (pthreads build; under FAISS's
 * coarse quantizer for batches of 20+ queries, and k-means) starts its own threads on every core
 * per call, while a server's threads already search in parallel: searches keep it at `searching`
 * threads (< 1 means 1); while a build or a replace runs it uses every core, and goes back to
 * `searching` when the last one ends. Call once at start; a no-op when FAISS links another BLAS.
 */
QV_API void qv_blas_threads_init(int searching);

typedef struct qv_search_params {
  size_t k;        /* results per query, 1 .. QV_MAX_K */
  uint32_t nprobe; /* IVF lists to probe, 1 .. nlist; for a graph (HNSW) its efSearch, 1 ..
                      QV_MAX_EF_SEARCH; 0 = the collection's default. Ignored by "Flat". */
  /* 0: any. Otherwise the search answers only while the collection's data version (its
   * generation, see qv_collection_set_generation) is this one, checked under the same lock the
   * search holds, so an answer never comes from another version: QV_EPRECONDITION when it is
   * not (qv_collection_generation then tells the caller which it is). */
  uint64_t generation;
  /* NULL: every item. Otherwise only items that match it are answered (quiver/attrs.h), found as
   * filter_path says; a search of fewer matches than k pads. Exact search scans the matches. */
  const qv_filter *filter;
  qv_filter_path filter_path;
} qv_search_params;

/* Searches n queries (n x dim floats). Writes n * k scores and ids, best first, padded with id -1
 * (see quiver/types.h) when fewer than k vectors are reachable.
 * Returns QV_OK; QV_EINVAL (n == 0, k out of range, nprobe > nlist, NaN/Inf in a query, zero
 * query for cosine, NULL buffers; the message names the query and value); QV_EPRECONDITION (IVF
 * index not built yet: call qv_collection_build); QV_ENOMEM; QV_EINTERNAL. */
QV_API qv_status qv_collection_search(qv_collection *c, const float *queries, size_t n,
                                      const qv_search_params *p, float *scores, int64_t *ids,
                                      qv_error *err);

/* Exact (brute-force) search over the stored full-precision vectors with the kernels/ CPU path:
 * the reference for recall. Same contract as qv_collection_search (nprobe is ignored; ties rank
 * the smaller id first); works before any build. */
QV_API qv_status qv_collection_search_exact(qv_collection *c, const float *queries, size_t n,
                                            const qv_search_params *p, float *scores, int64_t *ids,
                                            qv_error *err);

/* Search, then the rerank stage of kernels/ (quiver/rerank.h) on each query's candidates: the
 * index returns `candidates` (k' >= p->k; 0 = 4 * k) per query, their full-precision vectors are
 * re-scored exactly (refine: lifts SQ/PQ indexes to near-exact), filtered by rp's allow/deny
 * lists, optionally diversified (MMR), and the top p->k go back. rp->k is ignored (p->k rules).
 * Scores follow quiver/rerank.h. Blending with features needs rp->n_features equal to the
 * collection's n_features (and 1 + n_features weights); otherwise QV_EINVAL.
 * Returns what qv_collection_search returns, plus QV_EINVAL for bad rerank parameters. */
QV_API qv_status qv_collection_search_refined(qv_collection *c, const float *queries, size_t n,
                                              const qv_search_params *p, size_t candidates,
                                              const struct qv_rerank_params *rp, float *scores,
                                              int64_t *ids, qv_error *err);

/* The checks qv_collection_search makes before it searches (arguments, queries, a built index),
 * in its order and with its messages, without searching: for a caller that gathers requests
 * into one search (quiverd's batcher) and must refuse each bad one alone.
 * Returns QV_OK when qv_collection_search would get past them; else what it would return. */
QV_API qv_status qv_collection_search_check(qv_collection *c, const float *queries, size_t n,
                                            const qv_search_params *p, qv_error *err);

/* Saves to directory `dir` (created if needed) crash-safely: the data goes to a new version
 * subdirectory (with its own copy of the manifest), fsynced, and becomes current only when
 * MANIFEST.json is atomically replaced. The last keep_versions versions are kept as fallbacks
 * (qv_collection_open serves the newest one that passes its checks); older ones are removed.
 * Adds and deletes wait only while it takes its snapshot: the index serialised into memory and
 * copies of the stored vectors, ids and features (so a save needs about the collection's size
 * again in memory while it runs); the files are written and synced while writes go on, and the
 * writes made meanwhile are in the write-ahead log after the snapshot. When the copies do not
 * fit, the save writes from the live collection and adds and deletes wait until it is done.
 * Saves of one collection are serialised.
 * Returns QV_OK; QV_EIO (message names the path); QV_ENOMEM; QV_EINTERNAL. */
QV_API qv_status qv_collection_save(qv_collection *c, const char *dir, qv_error *err);

/* How many versions a save keeps on disk, the new one included: 1 .. 100, default 2 (the newest
 * and one fallback). Returns QV_OK or QV_EINVAL. */
QV_API qv_status qv_collection_set_keep_versions(qv_collection *c, uint32_t n, qv_error *err);

/* Write-ahead log. With one attached, every add and delete appends a record to DIR/wal.log
 * (CRC per record) before it changes memory, and returns only once the record is as durable as
 * the policy says:
 *   sync_always = 1 (default): fdatasync per write. An acknowledged write survives a process
 *                 crash and a machine crash or power loss.
 *   sync_always = 0: fdatasync at most every interval_ms (at the first write after the interval,
 *                 and at save/close). Survives a process crash (the data is in the kernel's page
 *                 cache); a machine crash or power loss may lose the last interval_ms of
 *                 acknowledged writes.
 * A save makes the log's records part of the snapshot (the manifest records the last one) and
 * empties the log. */
/* The file an operator creates in a collection's directory to serve it although its write-ahead
 * log misses acknowledged records (quiverd then opens it with accept_loss, saves at once, which
 * makes the loss permanent, and removes the file). */
#define QV_ACCEPT_WAL_LOSS "ACCEPT_WAL_LOSS"

typedef struct qv_wal_opts {
  int sync_always;
  uint32_t interval_ms; /* default 100 */
  /* 0 (default): a log that misses acknowledged records (a gap in the sequence numbers after
   * the snapshot opened, or a damaged segment) fails the attach with QV_ECORRUPT and is left as
   * it is. 1: replay what is there and report the loss in qv_wal_replay (the operator accepted
   * it; see docs/lifecycle.md). */
  int accept_loss;
} qv_wal_opts;

QV_API void qv_wal_opts_init(qv_wal_opts *o);

typedef struct qv_wal_replay {
  uint64_t records, upserted, deleted; /* replayed (newer than the snapshot) */
  uint64_t dropped_bytes;              /* a torn tail cut off (a crash mid-append) */
  uint64_t gaps; /* places where records between the snapshot and a later record were missing
                    (a log segment lost): the writes in them are not in the collection */
  uint64_t missing_first, missing_last; /* the first such range of sequence numbers */
  uint64_t damaged_segments;            /* segments whose records stop at damage */
} qv_wal_replay;

/* Attaches DIR/wal.log (created if absent; DIR is the collection's directory): first replays the
 * records newer than the opened snapshot through the normal write paths, cutting a torn tail,
 * then logs every later write. *r (may be NULL) says what replay did.
 * Returns QV_OK; QV_EIO; QV_ENOMEM; QV_EPRECONDITION (already attached); QV_ECORRUPT (damage in
 * the middle of the log, or, unless o->accept_loss, acknowledged records missing: a gap or a
 * damaged segment; nothing is changed on disk); or the error of a record that fails to apply
 * (the message names it). */
QV_API qv_status qv_collection_wal_attach(qv_collection *c, const char *dir, const qv_wal_opts *o,
                                          qv_wal_replay *r, qv_error *err);

typedef struct qv_collection_stats {
  size_t dim;
  qv_metric metric;
  char spec[QV_MAX_SPEC];
  uint64_t count;          /* stored vectors */
  uint64_t indexed;        /* vectors in the index (== count once built; 0 before) */
  int trained;             /* 1 when the index is searchable */
  uint32_t nlist;          /* 0 for Flat */
  uint32_t default_nprobe; /* as configured */
  uint64_t vector_bytes;   /* bytes of the full-precision store and ids */
  uint64_t index_bytes;    /* estimated bytes of the FAISS index (codes, ids, centroids) */
  uint64_t version;        /* build counter: +1 per successful build (persisted) */
  size_t n_features;       /* per-item features */
  qv_device device;        /* as asked */
  int gpu;                 /* the device whose copy answers searches; -1: the CPU index */
  uint64_t device_bytes;   /* GPU memory reserved by that copy (estimate); 0 on the CPU */
  char placement[192];     /* why it serves where it does, e.g. "cpu: no GPU is present" */
  uint64_t tombstones;     /* stale index entries hidden from searches until a save or build */
  uint64_t gpu_fallbacks;  /* searches the GPU copy could not answer (served by the CPU) */
  int deferred_deletes;    /* as created */
  uint64_t wal_bytes;      /* write-ahead log since the last save (0 without a log) */
  uint64_t wal_records;
  uint64_t disk_version; /* the on-disk version opened or last saved (0: never saved) */
  char open_note[448];   /* why an older version was opened; empty normally */
  double build_recall;   /* the last build's recall@k on its sample (-1: not measured) */
  uint32_t build_recall_k;
  uint32_t build_nprobe; /* the nprobe that recall was measured at */
  uint64_t generation;   /* the data version (qv_collection_set_generation) */
  int graph;             /* 1: a graph index (HNSW): default_nprobe is its efSearch */
  size_t n_attrs;        /* the attribute schema (quiver/attrs.h) */
  qv_attr_field attrs[QV_MAX_ATTRS];
  uint64_t attr_bytes; /* memory of the attributes (columns, tag sets, dictionaries) */
  /* Filtered searches since open, by the path that answered them (one per query). */
  uint64_t filtered_exact, filtered_index, filtered_overfetch_retries;
} qv_collection_stats;

/* Moves the collection's searches to `device` (see quiver/gpu.h): copies the built index to a GPU
 * or frees the copy. Searches go on meanwhile. Returns QV_OK (also when it falls back to the CPU:
 * see stats.placement); QV_EPRECONDITION (GPU asked, none present, no fallback); QV_ENOMEM (over
 * the GPU budget, no fallback); QV_EINVAL. */
QV_API qv_status qv_collection_set_device(qv_collection *c, qv_device device, qv_error *err);

/* Fills *s. Safe alongside searches. Returns QV_OK or QV_EINVAL (NULL). */
QV_API qv_status qv_collection_stats_get(qv_collection *c, qv_collection_stats *s, qv_error *err);

/* The data version of a collection: which embeddings (which rollout generation) its state holds.
 * 1 at create; persisted with every save; set only by its owner (a server stages version N of a
 * collection as a second collection with generation N); qv_collection_replace swaps it with the
 * rest of the state, so a search pinned to a generation (qv_search_params.generation) is answered
 * by the state that has it or refused. set: g >= 1, QV_OK or QV_EINVAL. */
QV_API uint64_t qv_collection_generation(qv_collection *c);
QV_API qv_status qv_collection_set_generation(qv_collection *c, uint64_t g, qv_error *err);

/* 1 when spec names a graph index (HNSW<M>...), whose search parameter is efSearch. */
QV_API int qv_spec_is_graph(const char *spec);

/* Copies the stored vector of `id` into out (dim floats; normalised for cosine).
 * Returns QV_OK; QV_ENOTFOUND; QV_EINVAL. */
QV_API qv_status qv_collection_get(qv_collection *c, int64_t id, float *out, qv_error *err);

/* Fetches n stored items at once, under one read lock (one consistent state): for each ids[i]
 * found[i] = 1 and its vector goes to vectors + i * dim (normalised for cosine) and its features
 * to features + i * n_features; for one not stored found[i] = 0 and its rows are zeroed. vectors
 * and features may be NULL (not wanted). *n_found (may be NULL) gets how many were found.
 * Returns QV_OK (also when none is found); QV_EINVAL (NULL c, ids or found with n > 0). */
QV_API qv_status qv_collection_get_items(qv_collection *c, size_t n, const int64_t *ids,
                                         float *vectors, float *features, uint8_t *found,
                                         size_t *n_found, qv_error *err);

/* qv_collection_get_items, and when attrs is not NULL the attributes of the same items from the
 * same state: *attrs gets one column per schema attribute (in schema order) of n rows (an id not
 * stored answers its defaults); free it with qv_attr_batch_free. */
QV_API qv_status qv_collection_get_items_attrs(qv_collection *c, size_t n, const int64_t *ids,
                                               float *vectors, float *features, uint8_t *found,
                                               size_t *n_found, qv_attr_batch *attrs,
                                               qv_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QUIVER_COLLECTION_H */

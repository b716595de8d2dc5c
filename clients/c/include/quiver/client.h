/* libquiver_client — the C client of quiverd (gRPC, package quiver.v1).
 *
 * Lifecycle: qv_client_connect -> any calls -> qv_client_close. A client holds one gRPC channel;
 * calls are synchronous (each blocks until its answer or its deadline) and any number of threads
 * may call through one client at once.
 *
 * Errors: every call returns a qv_status mapped from the gRPC status (INVALID_ARGUMENT ->
 * QV_EINVAL, NOT_FOUND -> QV_ENOTFOUND, ALREADY_EXISTS -> QV_EEXIST, FAILED_PRECONDITION ->
 * QV_EPRECONDITION, RESOURCE_EXHAUSTED -> QV_ENOMEM, DEADLINE_EXCEEDED -> QV_EDEADLINE,
 * UNAVAILABLE -> QV_EUNAVAILABLE, UNIMPLEMENTED -> QV_EUNSUPPORTED, CANCELLED -> QV_ECANCELLED,
 * DATA_LOSS -> QV_ECORRUPT, others -> QV_EINTERNAL), and err->msg starts with the gRPC status name:
 * "INVALID_ARGUMENT: query dimension 96 does not match collection 'demo' (128)".
 * Arguments are borrowed for the duration of the call.
 */
#ifndef QUIVER_CLIENT_H
#define QUIVER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/status.h"
#include "quiver/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qv_client qv_client;

typedef struct qv_client_opts {
  const char *target; /* "host:port"; default "127.0.0.1:7070" when NULL */
  int64_t timeout_ms; /* deadline of each call; default 30000; <= 0 means the default */
  int wait_for_ready; /* 1: a call waits (until its deadline) for the server to come up */
  /* TLS: with tls_ca set (a PEM file of the CA that signed the server's certificate) the channel
   * is TLS; tls_cert + tls_key (PEM files) present a client certificate (mutual TLS). NULL =
   * plaintext. */
  const char *tls_ca, *tls_cert, *tls_key;
  /* Bearer token sent as "authorization: Bearer TOKEN" on every call (quiverd --auth-tokens);
   * NULL = none. Never logged. */
  const char *token;
} qv_client_opts;

QV_API void qv_client_opts_init(qv_client_opts *o);

/* Creates the channel (no round trip: a server that is down shows up on the first call as
 * QV_EUNAVAILABLE). Returns QV_OK; QV_EINVAL (also: a TLS file that cannot be read, a client
 * certificate without its key); QV_ENOMEM. On failure *out is NULL. A call refused for its token
 * returns QV_EUNAUTHENTICATED (none or unknown) or QV_EPERMISSION (a read token on an admin
 * call). */
QV_API qv_status qv_client_connect(qv_client **out, const qv_client_opts *o, qv_error *err);

/* NULL allowed. */
QV_API void qv_client_close(qv_client *c);

/* ---- item attributes and filters ---------------------------------------------------------
 * A collection may declare up to QV_CLIENT_MAX_ATTRS typed attributes per item at create
 * (qv_create_opts.attrs); upserts carry their values as columns (qv_client_upsert_ex), a search
 * may filter on them (qv_client_search_opts.filter: the grammar is the server's, documented in
 * index/include/quiver/attrs.h, e.g. `category in (3, 7) and price < 20 and not sold_out and
 * tags has "summer"`), and qv_client_get returns them (QV_CLIENT_GET_ATTRIBUTES). These are the
 * client's own copies of the wire types (quiver.v1.AttributeType, AttributeField,
 * AttributeColumn): the client does not link the index layer. */

#define QV_CLIENT_MAX_ATTRS 32     /* attributes of one collection */
#define QV_CLIENT_MAX_ATTR_NAME 64 /* bytes of a name with its NUL */

/* The values are quiver.v1.AttributeType's. */
typedef enum qv_client_attr_type {
  QV_CLIENT_ATTR_INT64 = 1,
  QV_CLIENT_ATTR_FLOAT = 2, /* a double */
  QV_CLIENT_ATTR_BOOL = 3,
  QV_CLIENT_ATTR_KEYWORD = 4, /* one string */
  QV_CLIENT_ATTR_TAGS = 5     /* a set of strings */
} qv_client_attr_type;

/* "int64", "float", "bool", "keyword", "tags"; NULL for any other value. */
QV_API const char *qv_client_attr_type_name(qv_client_attr_type t);
/* Parses one of those names (exactly, lower case). Returns QV_OK or QV_EINVAL naming the five. */
QV_API qv_status qv_client_attr_type_parse(const char *s, qv_client_attr_type *out, qv_error *err);

/* One attribute of a schema. */
typedef struct qv_client_attr_field {
  char name[QV_CLIENT_MAX_ATTR_NAME];
  qv_client_attr_type type;
} qv_client_attr_field;

/* One attribute's values for the n rows of an upsert (or of a get's answer), in row order.
 * Exactly the array of its type is read:
 *   INT64 and BOOL: ints[n] (BOOL: 0 = false, anything else = true); FLOAT: floats[n];
 *   KEYWORD: strs[n] (NUL-terminated; NULL = "");
 *   TAGS: counts[n] tags per row, and strs holding every row's tags in row order (the sum of
 *   counts strings).
 * In what qv_client_get returns, the arrays of the other types are NULL. */
typedef struct qv_client_attr_column {
  const char *name;
  qv_client_attr_type type;
  const int64_t *ints;
  const double *floats;
  const char *const *strs;
  const uint32_t *counts;
} qv_client_attr_column;

/* How a filtered search finds its candidates (quiver.v1.FilterPath, same values). */
typedef enum qv_client_filter_path {
  QV_CLIENT_FILTER_AUTO = 0,  /* the server picks by the filter's selectivity */
  QV_CLIENT_FILTER_EXACT = 1, /* exact scan of the items that match (recall 1) */
  QV_CLIENT_FILTER_INDEX = 2  /* the index restricted to the items that match */
} qv_client_filter_path;

/* "auto", "exact", "index"; NULL for any other value. */
QV_API const char *qv_client_filter_path_name(qv_client_filter_path p);
/* Parses one of those names. Returns QV_OK or QV_EINVAL. */
QV_API qv_status qv_client_filter_path_parse(const char *s, qv_client_filter_path *out,
                                             qv_error *err);

/* What DescribeCollection reports. */
/* A data version of a collection held beside the serving one. */
typedef struct qv_version_info {
  uint64_t version; /* 0: none */
  char state[16];   /* "staged" (not serving yet) or "previous" (served before the last flip) */
  uint64_t count, memory_bytes;
  double recall; /* measured when it was staged, at recall_k / recall_nprobe (-1: not measured) */
  uint32_t recall_k, recall_nprobe;
} qv_version_info;

typedef struct qv_collection_info {
  char name[72];
  uint32_t dim;
  qv_metric metric;
  char index_spec[128];
  int state; /* 1 not built, 2 ready, 3 building (quiver.v1.CollectionState) */
  uint32_t default_nprobe;
  uint32_t default_ef_search; /* an HNSW collection's (its default_nprobe is 0) */
  uint64_t count, indexed;
  uint32_t nlist;
  uint64_t memory_bytes, vector_bytes, index_bytes, index_version;
  uint32_t n_features; /* per-item features */
  qv_device device;    /* as asked */
  int gpu;             /* the GPU answering searches; -1 = the CPU index */
  uint64_t device_bytes, tombstones, gpu_fallbacks;
  char placement[192]; /* why it serves where it does */
  int deferred_deletes;
  double build_recall; /* the last build's/import's recall@build_recall_k (-1: not measured) */
  uint32_t build_recall_k, build_recall_nprobe;
  uint64_t snapshot_version; /* on-disk snapshot opened or last saved */
  char storage_note[448];    /* why an older snapshot version is served; empty normally */
  uint64_t wal_bytes, wal_records;
  /* Since the server started (0 with --batch off): searches through the batcher, the index
   * searches that answered them, their queries, requests expired while queued. */
  uint64_t batched_requests, batches, batched_queries, batch_expired;
  /* A fleet collection (described by a router): the shards its items are split over and the
   * replicas each shard wants; count/memory above then sum one serving replica per shard. 1 and
   * 1 for a single node's collection (the server leaves them 0 there; the client reports 1).
   * Each replica's state: qv_client_cluster_status. */
  uint32_t shards, replicas;
  /* Data versions (docs/rollout.md): the one served, and the one held beside it (staged, or the
   * previous one after a flip); beside.version 0 = none. */
  uint64_t version;
  qv_version_info beside;
  /* The attribute schema (create order; n_attrs 0: none) and the memory its values take on the
   * server (part of memory_bytes). */
  size_t n_attrs;
  qv_client_attr_field attrs[QV_CLIENT_MAX_ATTRS];
  uint64_t attribute_bytes;
} qv_collection_info;

/* "not built", "ready", "building", or "unknown". */
QV_API const char *qv_collection_state_name(int state);

typedef struct qv_create_opts {
  const char *name;
  uint32_t dim;
  qv_metric metric;
  const char *index_spec;     /* NULL or "" = "Flat" */
  uint32_t default_nprobe;    /* IVF only */
  uint32_t default_ef_search; /* HNSW only */
  uint64_t train_sample;
  uint32_t n_features;  /* per-item features for the rerank blend, 0 .. 64 */
  const char *device;   /* "auto", "cpu", "gpu"; NULL = the server's --device */
  int deferred_deletes; /* tombstones instead of removal until the next save/build */
  /* A fleet (sent to a router): items split over `shards` shards by a hash of their id, each
   * shard held by `replicas` shard servers; 0 = 1. A single node refuses more than 1 of either
   * (QV_EINVAL, "... needs a fleet ..."). */
  uint32_t shards, replicas;
  /* Item attributes (names [A-Za-z_][A-Za-z0-9_]*, unique, not a filter keyword), fixed for
   * the collection's life; NULL or n_attrs 0 = none. The server checks them (QV_EINVAL naming the
   * field); more than QV_CLIENT_MAX_ATTRS is QV_EINVAL here. */
  size_t n_attrs;
  const qv_client_attr_field *attrs;
} qv_create_opts;

QV_API qv_status qv_client_create(qv_client *c, const qv_create_opts *o, qv_collection_info *info,
                                  qv_error *err);
QV_API qv_status qv_client_drop(qv_client *c, const char *name, qv_error *err);
QV_API qv_status qv_client_describe(qv_client *c, const char *name, qv_collection_info *info,
                                    qv_error *err);
/* *out is a malloc'd array of *n entries (release with free()); sorted by name. */
QV_API qv_status qv_client_list(qv_client *c, qv_collection_info **out, size_t *n, qv_error *err);

/* Searches n queries of dim floats. scores and ids are caller-allocated, n * k each; padded with
 * id -1 when fewer than k results exist. nprobe 0 = the collection's default. exact = 1 asks for
 * brute-force search over the stored vectors. */
QV_API qv_status qv_client_search(qv_client *c, const char *collection, const float *queries,
                                  size_t n, size_t dim, size_t k, uint32_t nprobe, int exact,
                                  float *scores, int64_t *ids, qv_error *err);

/* The rerank stage (see RerankOptions in proto/quiver/v1/retrieval.proto). */
typedef struct qv_client_rerank {
  uint32_t candidates;  /* k' per query; 0 = 4 * k */
  int refine;           /* 1: exact re-score from full vectors */
  const float *weights; /* NULL or n_weights (at most 1 today) */
  size_t n_weights;
  float mmr_lambda;         /* 0 = off */
  const int64_t *allow_ids; /* NULL or n_allow ids */
  size_t n_allow;
  const int64_t *deny_ids; /* NULL or n_deny ids */
  size_t n_deny;
} qv_client_rerank;

/* qv_client_search with the rerank stage; rr NULL is a plain search. */
QV_API qv_status qv_client_search_rerank(qv_client *c, const char *collection, const float *queries,
                                         size_t n, size_t dim, size_t k, uint32_t nprobe,
                                         const qv_client_rerank *rr, float *scores, int64_t *ids,
                                         qv_error *err);

/* What a search asks besides its queries; all zero (qv_client_search_opts_init) is a plain
 * search with the collection's default nprobe. */
typedef struct qv_client_search_opts {
  uint32_t nprobe;                /* IVF: 0 = the collection's default */
  uint32_t ef_search;             /* HNSW: 0 = the collection's default */
  int exact;                      /* 1: brute force over the stored vectors (no rerank with it) */
  const qv_client_rerank *rerank; /* NULL = no rerank stage; borrowed for the call */
  /* Through a router: when a shard has no replica answering in time, answer from the shards
   * that did instead of failing with QV_EUNAVAILABLE; the answer names the missing shards.
   * Ignored by a single node. */
  int allow_partial;
  /* The data version to answer from (0 = the serving one); a server that does not hold it
   * refuses with QV_EPRECONDITION. */
  uint64_t version;
  uint64_t *answered_version; /* may be NULL: gets the data version that answered */
  /* Item-to-item ("more like this item"): the stored vectors of these n_query_ids ids are the
   * queries (then qv_client_search_ex takes queries NULL, n == n_query_ids, dim 0 or the
   * collection's). Each query's own id is left out of its results unless include_self. An id
   * not in the collection gets a row of padding (id -1) and unknown[i] = 1 (unknown may be NULL;
   * n_query_ids bytes); only when every id is unknown is the call QV_ENOTFOUND. */
  const int64_t *query_ids;
  size_t n_query_ids;
  int include_self;
  uint8_t *unknown;
  /* Only items whose attributes match this expression are answered (NULL or "" = every item);
   * rows with fewer matches than k are padded with id -1. A malformed filter is QV_EINVAL with
   * the column of the mistake ("filter: column 14: ..."); a filter on a collection without
   * attributes QV_EPRECONDITION. filter_path: how the server finds the matches. */
  const char *filter;
  qv_client_filter_path filter_path;
} qv_client_search_opts;

QV_API void qv_client_search_opts_init(qv_client_search_opts *o);

/* qv_client_search with every option (o NULL = all defaults). missing (may be NULL) is a
 * caller-allocated array of missing_cap entries that gets the shards whose items are missing
 * from the answer (only a router with allow_partial leaves any out), in the server's order;
 * *n_missing (may be NULL) gets how many shards were missing, which may exceed missing_cap (only
 * the first missing_cap are stored). Returns what qv_client_search does; the server refuses
 * exact with a rerank stage (QV_EINVAL). Without allow_partial, or from a single node, *n_missing
 * is 0 on QV_OK. */
QV_API qv_status qv_client_search_ex(qv_client *c, const char *collection, const float *queries,
                                     size_t n, size_t dim, size_t k, const qv_client_search_opts *o,
                                     float *scores, int64_t *ids, uint32_t *missing,
                                     size_t missing_cap, size_t *n_missing, qv_error *err);

/* Fetch by ids (Get): what qv_client_get returns, freed with qv_client_items_free. */
typedef struct qv_client_items {
  size_t n;     /* ids found */
  int64_t *ids; /* n, in request order */
  size_t n_missing;
  int64_t *missing_ids; /* ids not in the collection, in request order */
  size_t dim;
  float *vectors; /* n x dim as stored (normalised for cosine); NULL unless asked for */
  size_t n_features;
  float *features; /* n x n_features; NULL unless asked for (or none) */
  /* With QV_CLIENT_GET_ATTRIBUTES (or fields 0) on a collection with attributes: one column per
   * schema attribute, in schema order, each of n rows (row i is ids[i]); else NULL and 0. The
   * type comes from the list of the answer that holds the values: with n 0 none does, and every
   * column reads QV_CLIENT_ATTR_INT64 (qv_client_describe has the schema). */
  size_t n_attrs;
  qv_client_attr_column *attrs;
} qv_client_items;

#define QV_CLIENT_GET_VECTOR 1u
#define QV_CLIENT_GET_FEATURES 2u
#define QV_CLIENT_GET_ATTRIBUTES 4u

/* The stored vectors, features and attributes of n ids (repeats are answered each time): fields
 * is a mask of QV_CLIENT_GET_* (0 = all). Unknown ids are in out->missing_ids, not an error. At
 * most the server's --max-queries ids per call. On success *out owns what it points to (release
 * with qv_client_items_free, which also frees the attribute columns and their strings); on
 * failure it is all zero. Returns QV_OK, QV_EINVAL (NULL arguments), QV_ENOMEM, QV_EINTERNAL (an
 * answer whose rows or attribute columns do not match its ids), or the call's status. */
QV_API qv_status qv_client_get(qv_client *c, const char *collection, size_t n, const int64_t *ids,
                               unsigned fields, qv_client_items *out, qv_error *err);
QV_API void qv_client_items_free(qv_client_items *it);

/* Progress of an upload or a build: phase ("upload", "sample", "train", "add", "evaluate", "tune",
 * "save", "done"),
 * done of total. Return non-zero to cancel. */
typedef int (*qv_client_progress_fn)(void *user, const char *phase, uint64_t done, uint64_t total);

/* Upserts n vectors of dim floats with their ids, streamed in chunks of about chunk_bytes (0 =
 * 4 MiB). *count_after (may be NULL) gets the collection's size afterwards. */
QV_API qv_status qv_client_upsert(qv_client *c, const char *collection, size_t n, size_t dim,
                                  const int64_t *ids, const float *vectors, size_t chunk_bytes,
                                  qv_client_progress_fn progress, void *user, uint64_t *count_after,
                                  qv_error *err);

/* As qv_client_upsert, with each item's n_features features (n x n_features floats; NULL or
 * n_features 0 = zeros). */
QV_API qv_status qv_client_upsert_features(qv_client *c, const char *collection, size_t n,
                                           size_t dim, const int64_t *ids, const float *vectors,
                                           const float *features, size_t n_features,
                                           size_t chunk_bytes, qv_client_progress_fn progress,
                                           void *user, uint64_t *count_after, qv_error *err);

/* What an upsert sends besides its ids and vectors; all zero (qv_client_upsert_opts_init) is
 * qv_client_upsert with the default chunk size. */
typedef struct qv_client_upsert_opts {
  const float *features; /* n x n_features floats; NULL or n_features 0 = zeros */
  size_t n_features;
  /* Attribute columns, each of n rows, by name in any order (each at most once); an attribute
   * of the schema with no column gets its default (0, 0.0, false, "", no tags): an upsert
   * replaces the whole item. NULL or n_attrs 0 = every attribute its default. */
  const qv_client_attr_column *attrs;
  size_t n_attrs;
  size_t chunk_bytes; /* about this many bytes per message; 0 = 4 MiB */
  qv_client_progress_fn progress;
  void *user;
} qv_client_upsert_opts;

QV_API void qv_client_upsert_opts_init(qv_client_upsert_opts *o);

/* qv_client_upsert with every option (o NULL = none). The columns are split with the rows over
 * the stream's messages. Returns QV_OK; QV_EINVAL for a column with no name, a type this client
 * does not know, or NULL values (before any call), and from the server for a column of no
 * attribute or of the wrong type, or a bad value (its message names the column and row);
 * QV_ECANCELLED when progress stopped it; or the call's status. */
QV_API qv_status qv_client_upsert_ex(qv_client *c, const char *collection, size_t n, size_t dim,
                                     const int64_t *ids, const float *vectors,
                                     const qv_client_upsert_opts *o, uint64_t *count_after,
                                     qv_error *err);

QV_API qv_status qv_client_delete(qv_client *c, const char *collection, size_t n,
                                  const int64_t *ids, uint64_t *deleted, uint64_t *count_after,
                                  qv_error *err);

/* Builds the collection's index, reporting the server's progress; fills *info (may be NULL) from
 * the final message. The call's deadline is the client timeout, unless timeout_ms > 0 here. */
QV_API qv_status qv_client_build(qv_client *c, const char *collection, int64_t timeout_ms,
                                 qv_client_progress_fn progress, void *user,
                                 qv_collection_info *info, qv_error *err);

/* Recall-gated promotion and nprobe tuning (BuildIndexRequest in the proto). Zero = off/default. */
typedef struct qv_client_build_opts {
  double recall_floor;   /* refuse the swap below it (FAILED_PRECONDITION), 0 = none */
  double target_recall;  /* tune default_nprobe to the smallest reaching it, 0 = keep */
  uint32_t eval_queries; /* sample size, 0 = 200 */
  uint32_t eval_k;       /* recall@k, 0 = 10 */
} qv_client_build_opts;

/* What the server measured. */
typedef struct qv_client_build_result {
  double recall; /* -1: not measured */
  uint32_t recall_k, recall_nprobe, tuned_nprobe;
  uint64_t caught_up; /* writes made during the build, re-applied before the swap (build only) */
  uint64_t bytes_sent;
  uint32_t files;
  double elapsed_seconds;
  uint64_t version; /* import: the data version it holds (staged, or now serving) */
} qv_client_build_result;

/* qv_client_build with options (NULL = none) and the measured result (may be NULL). */
QV_API qv_status qv_client_build_ex(qv_client *c, const char *collection,
                                    const qv_client_build_opts *o, int64_t timeout_ms,
                                    qv_client_progress_fn progress, void *user,
                                    qv_collection_info *info, qv_client_build_result *res,
                                    qv_error *err);

/* ImportIndex: swaps an index built offline (`quiver index build --out DIR`) into `collection`.
 * With index_dir set, DIR's files (MANIFEST.json and the version it names) are streamed in
 * chunks of about chunk_bytes (0 = 4 MiB), each with its CRC-32; with server_path set instead,
 * the server loads that directory itself (it must lie under quiverd's --import-root). create = 1
 * creates the collection from the index when absent. Progress phase "upload" counts bytes. */
typedef struct qv_client_import_opts {
  const char *index_dir;   /* local directory to stream, or NULL */
  const char *server_path; /* directory on the server, or NULL */
  int create;
  qv_client_build_opts check;
  size_t chunk_bytes;
  int64_t timeout_ms; /* 0 = the client's timeout */
  /* 1: hold it as a new data version beside the serving one (qv_client_rollout flips to it)
   * instead of swapping it in; version = its number, above the serving one (0 = serving + 1). */
  int stage;
  uint64_t version;
} qv_client_import_opts;

QV_API qv_status qv_client_import(qv_client *c, const char *collection,
                                  const qv_client_import_opts *o, qv_client_progress_fn progress,
                                  void *user, qv_collection_info *info, qv_client_build_result *res,
                                  qv_error *err);

/* Rollout (docs/rollout.md): what to do with the versions of a collection. */
typedef enum {
  QV_ROLLOUT_STATUS = 1,   /* nothing; say where it stands */
  QV_ROLLOUT_FLIP = 2,     /* serve the staged version (version != 0: it must be that one) */
  QV_ROLLOUT_ABORT = 3,    /* drop the staged version */
  QV_ROLLOUT_ROLLBACK = 4, /* serve the previous version again; the other is dropped */
  QV_ROLLOUT_RELEASE = 5,  /* drop the previous version */
  QV_ROLLOUT_BEGIN = 6     /* a router: begin a fleet rollout (qv_client_fleet_rollout) */
} qv_rollout_action;

typedef struct qv_rollout_status {
  uint64_t version;       /* served after the call */
  qv_version_info beside; /* held beside it (version 0: none) */
  char message[160];      /* what the call did */
  /* Through a router: the fleet rollout's state ("" = none, or a single node) and the shards
   * (0 from a single node); qv_client_fleet_rollout has every replica. */
  char state[16];
  uint32_t shards;
} qv_rollout_status;

/* Returns QV_OK; QV_ENOTFOUND (no such collection); QV_EPRECONDITION (nothing of that kind is
 * held, another version is, a build or import is running); QV_EINVAL (bad action). */
QV_API qv_status qv_client_rollout(qv_client *c, const char *collection, qv_rollout_action action,
                                   uint64_t version, qv_rollout_status *out, qv_error *err);

/* A fleet rollout through a router (docs/rollout.md). BEGIN records each shard's log position
 * and answers every replica to push the shard's directory to (ImportIndex stage = 1, version =
 * rollout_version, collection NAME.shardK, on the replica's addr); the controller flips when
 * every shard has its ready replicas. STATUS, ABORT, ROLLBACK and RELEASE as on a node, for the
 * whole fleet; FLIP is the controller's (QV_EINVAL). A single node answers BEGIN with
 * QV_EUNSUPPORTED. */
typedef struct qv_rollout_opts {
  uint64_t version;    /* BEGIN: 0 = the collection's version + 1 */
  double recall_floor; /* a staged replica's recall below it aborts the rollout; 0 = none */
  uint32_t min_ready;  /* ready replicas per shard to flip; 0 = every in-sync one */
  double hold_s;       /* the previous version is held this long after the flip; 0 = none */
} qv_rollout_opts;

typedef struct qv_rollout_replica {
  uint32_t shard;
  char node[64], addr[256];
  char state[16];   /* "loading", "catching-up", "in-sync" */
  uint64_t version; /* the data version it serves */
  uint64_t beside_version;
  char beside_state[16]; /* "", "staged", "ready", "previous" */
  double beside_recall;
} qv_rollout_replica;

typedef struct qv_fleet_rollout {
  uint64_t version; /* the collection's data version (the pointer) */
  char state[16];   /* "staging", "flipped", "done", "aborted", "rolled-back"; "" = none */
  uint64_t rollout_version, previous_version;
  uint32_t shards;
  size_t n_replicas;
  qv_rollout_replica *replicas;
  char message[512];
  uint32_t routers, routers_on_version; /* live routers; those already pinning to `version` */
} qv_fleet_rollout;

QV_API qv_status qv_client_fleet_rollout(qv_client *c, const char *collection,
                                         qv_rollout_action action, const qv_rollout_opts *o,
                                         qv_fleet_rollout **out, qv_error *err);
QV_API void qv_fleet_rollout_free(qv_fleet_rollout *r);

/* ---- the fleet ---------------------------------------------------------------------------
 * What a router knows of its fleet (ListCollections through a router). A single node answers
 * with no nodes and no replicas, and its collections with 1 shard of 1 replica. */

/* A shard server, as its membership key in the fleet's coordination store (etcd) says. */
typedef struct qv_node_info {
  char id[64];       /* its --node-id */
  char addr[256];    /* where routers reach it */
  uint32_t replicas; /* replicas assigned to it */
} qv_node_info;

/* One replica of one shard of a fleet collection, as the coordination store last saw it. */
typedef struct qv_replica_info {
  size_t collection; /* index into qv_cluster_status.collections */
  uint32_t shard;
  char node[64];  /* the shard server's --node-id */
  char addr[256]; /* where routers reach it */
  char state[16]; /* "loading", "catching-up", "in-sync" (only in-sync replicas get searches) */
  uint64_t applied_seq; /* the last record of the shard's write log it has applied */
  uint64_t log_seq; /* the log's last record when it last looked (lag = log_seq - applied_seq) */
  uint64_t count;   /* vectors it holds */
  uint64_t index_version;
} qv_replica_info;

/* The fleet's state. Owned by the caller once returned: release with qv_cluster_status_free. */
typedef struct qv_cluster_status {
  qv_node_info *nodes; /* the live shard servers, as the router lists them */
  size_t n_nodes;
  qv_collection_info *collections; /* sorted by name (shards/replicas set; 1 on a single node) */
  size_t n_collections;
  qv_replica_info *replicas; /* grouped by collection, in the server's order (by shard) */
  size_t n_replicas;
} qv_cluster_status;

/* ListCollections with the fleet's nodes and every replica of every collection. On QV_OK *out is
 * a new qv_cluster_status (free with qv_cluster_status_free); on failure it is NULL. Returns
 * QV_OK; QV_EINVAL (NULL arguments); QV_ENOMEM; or the call's status. */
QV_API qv_status qv_client_cluster_status(qv_client *c, qv_cluster_status **out, qv_error *err);

/* NULL allowed. */
QV_API void qv_cluster_status_free(qv_cluster_status *s);

/* grpc.health.v1.Health/Check for `service` ("" = the server as a whole). *serving = 1 when the
 * answer is SERVING. Returns QV_ENOTFOUND for an unknown service. */
QV_API qv_status qv_client_health(qv_client *c, const char *service, int *serving, qv_error *err);

/* A serving status of grpc.health.v1 (HealthCheckResponse.ServingStatus, same values). */
typedef enum qv_health_status {
  QV_HEALTH_UNKNOWN = 0,        /* the server sent a status this client does not know */
  QV_HEALTH_SERVING = 1,        /* answering calls */
  QV_HEALTH_NOT_SERVING = 2,    /* stopping, or its listener stopped accepting */
  QV_HEALTH_SERVICE_UNKNOWN = 3 /* not a service of this server (Watch only) */
} qv_health_status;

/* "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" or "UNKNOWN" (the proto's names). */
QV_API const char *qv_health_status_name(qv_health_status s);

/* Called with each status a watch receives; return non-zero to end the watch. */
typedef int (*qv_health_watch_fn)(void *user, qv_health_status status);

/* grpc.health.v1.Health/Watch for `service` ("" = the server as a whole, or
 * "quiver.v1.Retrieval"): calls fn(user, status) with the current status at once, then with each
 * change (the server sends only changes), on the calling thread, until fn returns non-zero, the
 * server ends the stream, or timeout_s passes (timeout_s <= 0: no deadline; the client's own
 * timeout does not apply). An unknown service gets QV_HEALTH_SERVICE_UNKNOWN and the stream stays
 * open (until fn, the timeout or a stop ends it). A quiverd that stops sends NOT_SERVING, then ends
 * every watch with UNAVAILABLE "the server is shutting down".
 * Returns QV_OK when fn ended the watch (or the server ended it with OK); QV_EUNAVAILABLE when the
 * stream ended at a server stop (after NOT_SERVING) or the server cannot be reached or went away;
 * QV_EDEADLINE when timeout_s passed; QV_EUNSUPPORTED for a server without Watch; QV_EINVAL (c or
 * fn NULL); QV_EINTERNAL (an undecodable message). Thread-safe as every call of a client. */
QV_API qv_status qv_client_health_watch(qv_client *c, const char *service, double timeout_s,
                                        qv_health_watch_fn fn, void *user, qv_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QUIVER_CLIENT_H */

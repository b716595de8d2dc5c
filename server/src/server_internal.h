/* What the files of quiverd's gRPC server share (server.h is the API): the server object and the
 * functions one file defines for another. */
#ifndef QUIVER_SERVER_SERVER_INTERNAL_H
#define QUIVER_SERVER_SERVER_INTERNAL_H

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "auth.h"
#include "call.h"
#include "methods.h"
#include "metrics.h"
#include "quiver/stage.h"
#include "quiver/v1/retrieval.pb-c.h"
#include "registry.h"
#include "server.h"

/* Writer threads: calls that write (Upsert and ImportIndex chunks, Delete) wait for a
 * collection's writers' mutex, its log's fsync and, when the log asks, a snapshot; on a polling
 * thread that wait would hold every call queued behind it (a search too). Their steps run on
 * these threads (server.c) instead, in arrival order per call (a call has one step outstanding at a
 * time). */
enum { QV__WRITERS = 2 };

struct qv__server {
  qv__config *cfg;
  qv__registry *reg;
  grpc_server *server;
  int ncq;
  grpc_completion_queue **cqs;
  pthread_t *threads;
  struct poller_arg *pargs; /* per queue */
  int nthreads;             /* pollers started (queues 0..nthreads-1) */
  void **handles;           /* per method */
  atomic_int stopping;
  pthread_mutex_t build_mu;
  pthread_cond_t build_cv;
  int builds;               /* running build threads */
  qv_device default_device; /* --device */
  qv__auth *auth;           /* --auth-tokens; NULL = every call allowed */
  /* The accept watchdog (--accept-check-s): probes the listener from inside. */
  pthread_t watchdog;
  int watchdog_started, wd_init;
  pthread_mutex_t wd_mu;
  pthread_cond_t wd_cv;
  struct sockaddr_storage wd_addr;
  socklen_t wd_len;
  atomic_int accept_dead; /* 1: the listener stopped accepting; health says NOT_SERVING */
  /* Writer threads and their queue of steps (qv__tag.next). */
  pthread_t writers[QV__WRITERS];
  int nwriters, writers_stop;
  pthread_mutex_t wq_mu;
  pthread_cond_t wq_cv;
  qv__tag *wq_head, *wq_tail;
  /* --role router: the fleet's router answers the calls (router.h); NULL on a node. */
  struct qv__router *router;
  /* The open Health/Watch calls (rpc_watch.c), told of every change of the health status. */
  pthread_mutex_t watch_mu;
  int watch_init;
  struct qv__watch *watches;
  int nwatches;
};

/* ---- wire_attrs.c: item attributes on the wire (quiver/attrs.h <-> quiver.v1) ---- */

/* quiver.v1.AttributeType <-> qv_attr_type (the same numbers); from_pb: -1 for
 * ATTRIBUTE_TYPE_UNSPECIFIED or an unknown value. */
int qv__attr_type_from_pb(int pb, qv_attr_type *out);
Quiver__V1__AttributeType qv__attr_type_to_pb(qv_attr_type t);

/* A CreateCollectionRequest's attributes as a schema in out[QV_MAX_ATTRS], checked as create
 * checks it (qv_attr_schema_check). QV_OK or QV_EINVAL naming the field. */
qv_status qv__schema_from_pb(size_t n, Quiver__V1__AttributeField *const *in, qv_attr_field *out,
                             qv_error *err);
/* A schema as n AttributeField messages in f (and their pointers in p), caller storage; the names
 * point into fields, which must outlive the messages. */
void qv__schema_to_pb(size_t n, const qv_attr_field *fields, Quiver__V1__AttributeField *f,
                      Quiver__V1__AttributeField **p);

/* An upsert message's attribute columns as the index layer's batch: b points into the message
 * (which must outlive it) and into the arrays below (bools as 0/1 ints; TAGS as counts and the
 * flat strings). Free with qv__attrs_in_free. */
typedef struct qv__attrs_in {
  qv_attr_batch b;
  qv_attr_column cols[QV_MAX_ATTRS];
  int64_t *ints;
  uint32_t *counts;
  const char **strs;
} qv__attrs_in;
/* Checks the n_cols columns of a message of n_rows items against the schema of collection
 * `collection` (named in messages): each names an attribute, at most once, and holds n_rows values
 * in the list of its type and none in the others. QV_OK; QV_EINVAL naming the column (e.g.
 * "attribute 'price' is float: send its values in floats (got 3 ints)"); QV_ENOMEM. The values
 * themselves (finite floats, string lengths, tag counts) are the index layer's to check
 * (qv_attr_batch_check). */
qv_status qv__attrs_from_pb(size_t n_fields, const qv_attr_field *fields, const char *collection,
                            size_t n_rows, size_t n_cols, Quiver__V1__AttributeColumn *const *cols,
                            qv__attrs_in *out, qv_error *err);
void qv__attrs_in_free(qv__attrs_in *a);

/* A batch of n_rows rows as a Get answer's AttributeColumns, only the rows where keep[r] (keep
 * NULL: all), in batch order: cols/ptrs point into b (which must outlive the message) and into
 * mem. Free with qv__attrs_out_free. */
typedef struct qv__attrs_out {
  size_t n;
  Quiver__V1__AttributeColumn cols[QV_MAX_ATTRS];
  Quiver__V1__AttributeColumn *ptrs[QV_MAX_ATTRS];
  void *mem[QV_MAX_ATTRS];
} qv__attrs_out;
qv_status qv__attrs_to_pb(const qv_attr_batch *b, size_t n_rows, const uint8_t *keep,
                          qv__attrs_out *out, qv_error *err);
void qv__attrs_out_free(qv__attrs_out *o);

/* A router's Get answer: row r of n is row rows[r] of shard answer src[r] (src[r] NULL: an id not
 * found; its row gets the defaults), one column per schema attribute (schema order), matched by
 * name in each answer; every value and string copied into out. QV_OK; QV_EINTERNAL when an answer
 * lacks a whole column of an attribute; QV_ENOMEM. Free with qv__attrs_merged_free. */
typedef struct qv__attrs_merged {
  qv_attr_batch b;
  qv_attr_column cols[QV_MAX_ATTRS];
  char names[QV_MAX_ATTRS][QV_MAX_ATTR_NAME];
  void *mem[QV_MAX_ATTRS];   /* per column: n values (TAGS: counts) */
  char **strs[QV_MAX_ATTRS]; /* TAGS: the flat strings */
  char *chars[QV_MAX_ATTRS]; /* the strings' bytes */
} qv__attrs_merged;
qv_status qv__attrs_gather(size_t n_fields, const qv_attr_field *fields, size_t n,
                           const Quiver__V1__GetResponse *const *src, const size_t *rows,
                           qv__attrs_merged *out, qv_error *err);
void qv__attrs_merged_free(qv__attrs_merged *g);

/* An upsert message's columns (checked by qv__attrs_from_pb) re-cut by rows, for a router's
 * per-shard records: set(m, i) makes source row i row m; rows(m) makes the columns m rows long.
 * The columns point into the source message (which must outlive them) and into bufs. */
typedef struct qv__attrs_split {
  size_t n;
  Quiver__V1__AttributeColumn cols[QV_MAX_ATTRS];
  Quiver__V1__AttributeColumn *ptrs[QV_MAX_ATTRS];
  const Quiver__V1__AttributeColumn *src[QV_MAX_ATTRS];
  qv_attr_type type[QV_MAX_ATTRS];
  void *bufs[QV_MAX_ATTRS];
} qv__attrs_split;
qv_status qv__attrs_split_init(qv__attrs_split *s, size_t n_fields, const qv_attr_field *fields,
                               size_t n_rows, size_t n_cols,
                               Quiver__V1__AttributeColumn *const *cols, qv_error *err);
void qv__attrs_split_set(qv__attrs_split *s, size_t m, size_t i);
void qv__attrs_split_rows(qv__attrs_split *s, size_t m);
/* About the bytes source row i's attributes take packed. */
size_t qv__attrs_row_bytes(const qv__attrs_split *s, size_t i);
void qv__attrs_split_free(qv__attrs_split *s);

/* ---- info.c ---- */

/* Caller storage for the strings of one CollectionInfo. */
#define INFO_STRINGS                                                                               \
  (QV_MAX_SPEC + sizeof(((qv_collection_stats *)0)->placement) +                                   \
   sizeof(((qv_collection_stats *)0)->open_note))
/* ... and, aligned after the strings, the one VersionInfo beside the serving version and the
 * attribute schema. */
typedef struct qv__info_tail {
  Quiver__V1__VersionInfo v;
  Quiver__V1__VersionInfo *vp;
  Quiver__V1__AttributeField f[QV_MAX_ATTRS];
  Quiver__V1__AttributeField *fp[QV_MAX_ATTRS];
  qv_attr_field fields[QV_MAX_ATTRS];
} qv__info_tail;
#define INFO_BUF (INFO_STRINGS + _Alignof(qv__info_tail) + sizeof(qv__info_tail))

/* Fills v (and its strings, static) from what e holds beside its serving version; 0 when none. */
int qv__fill_version(qv__entry *e, Quiver__V1__VersionInfo *v);

void qv__fill_info(qv__entry *e, Quiver__V1__CollectionInfo *info, char *spec_buf);

/* ---- rpc_rollout.c ---- */

/* A write the serving version of e took (upsert = 1: n ids, vectors, features and attrs or NULL;
 * 0: a delete of n ids), applied to the version held beside it too (the caller holds
 * qv__entry_write_begin). One that fails there drops that version (logged): it never serves
 * without an acknowledged write. */
void qv__slot_write(qv__entry *e, size_t n, const int64_t *ids, const float *vectors,
                    const float *features, const qv_attr_batch *attrs, int upsert);

/* ---- the handlers (rpc_search.c, rpc_admin.c) ---- */

qv_status qv__h_search(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                       grpc_byte_buffer **resp, qv_error *err);
/* A CreateCollection request's options, checked (the node's and the router's one check); o->attrs
 * points into fields (QV_MAX_ATTRS of caller storage). */
qv_status qv__create_opts_from(const qv__server *s, const Quiver__V1__CreateCollectionRequest *r,
                               qv_collection_opts *o, qv_attr_field *fields, qv_error *err);
qv_status qv__h_create(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                       grpc_byte_buffer **resp, qv_error *err);
qv_status qv__h_drop(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                     grpc_byte_buffer **resp, qv_error *err);
qv_status qv__h_describe(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                         grpc_byte_buffer **resp, qv_error *err);
qv_status qv__h_list(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                     grpc_byte_buffer **resp, qv_error *err);
qv_status qv__h_delete(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                       grpc_byte_buffer **resp, qv_error *err);
qv_status qv__h_health(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                       grpc_byte_buffer **resp, qv_error *err);

/* ---- rpc_watch.c: Health/Watch, and the health status Check answers too ---- */

typedef struct qv__watch qv__watch;
/* 1 for the services health reports on: "" (the server) and "quiver.v1.Retrieval". */
int qv__health_known(const char *service);
/* 1 while the server is SERVING: not stopping, and the accept watchdog found no deaf listener. */
int qv__health_serving(qv__server *s);
void qv__start_watch(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                     grpc_byte_buffer *payload);
/* The health status may have changed (s->stopping or s->accept_dead was just set): every open
 * watch whose status moved gets it sent, those of a stopping server their end too. Any thread. */
void qv__health_changed(qv__server *s);
/* What a Watch of m (a HealthCheckRequest) sends first, as a unary answer (offline calls). */
qv_status qv__health_watch_first(qv__server *s, const ProtobufCMessage *m, grpc_byte_buffer **resp,
                                 qv_error *err);

/* ---- rpc_search.c ---- */

void qv__slow_query(qv__server *s, const Quiver__V1__SearchRequest *r, double t0, uint32_t batch);
int qv__search_batched(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                       gpr_timespec deadline, ProtobufCMessage *req, double t0);

/* ---- rpc_get.c: Get, and item-to-item search (query_ids) ---- */

qv_status qv__h_get(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                    grpc_byte_buffer **resp, qv_error *err);
/* A GetRequest's field mask: which parts of an item to return (QV_EINVAL naming an unknown one). */
qv_status qv__get_fields(const Quiver__V1__GetRequest *r, int *want_vec, int *want_feat,
                         int *want_attrs, qv_error *err);
/* A Get's rows for n ids (d vector floats, nf features each; 0 = not asked for), within the
 * server's message limit (QV_ENOMEM saying so); found is per id. Free with qv__get_free. */
typedef struct qv__get_rows {
  size_t n, d, nf;
  float *vecs, *feats;
  uint8_t *found;
} qv__get_rows;
qv_status qv__get_alloc(const qv__server *s, size_t n, size_t d, size_t nf, qv__get_rows *g,
                        qv_error *err);
void qv__get_free(qv__get_rows *g);
/* The GetResponse of g (its rows compacted in place), for the request's ids; attrs (NULL: not
 * asked for) holds the attributes of the g->n rows, of which the found ones are answered.
 * QV_ENOMEM when the answer is over the server's message limit. */
qv_status qv__get_answer(const qv__server *s, qv__get_rows *g, const int64_t *ids, uint32_t dim,
                         uint32_t num_features, const qv_attr_batch *attrs, grpc_byte_buffer **resp,
                         qv_error *err);
/* n ids to look up (field `what`): 1 .. max, none negative. */
qv_status qv__ids_check(const int64_t *ids, size_t n, int64_t max, const char *what, qv_error *err);

/* An item-to-item search: the request with query_ids, its ids' vectors as the vector search
 * `req` to run (k_in = k + 1 results per known query, so that its own id can be dropped), and
 * which queries' ids are unknown. */
typedef struct qv__qids {
  const Quiver__V1__SearchRequest *r;
  size_t n, nknown;
  float *vecs;    /* n x dim as looked up, then the known ones' rows first */
  uint8_t *found; /* per query */
  uint32_t *unknown;
  size_t nunknown;
  uint32_t k_in;
  Quiver__V1__SearchRequest req;
  Quiver__V1__RerankOptions rr;
} qv__qids;

/* The checks of a request with query_ids before any lookup (queries too, k, the ids). */
qv_status qv__qids_check(const qv__server *s, const Quiver__V1__SearchRequest *r, qv_error *err);
/* Builds q from r and the lookup of its query_ids (vecs: n x dim, found: n; both malloc'd and
 * taken by q, freed by qv__qids_free even on failure). QV_ENOTFOUND when every id is unknown. */
qv_status qv__qids_begin(qv__qids *q, const Quiver__V1__SearchRequest *r, size_t dim, float *vecs,
                         uint8_t *found, qv_error *err);
/* From the vector search's answer (nknown x k_in) to the request's (n x k): each known query's
 * own id dropped (or its last result when its id is not among them), unknown ones padded. */
void qv__qids_finish(const qv__qids *q, qv_metric metric, const float *in_scores,
                     const int64_t *in_ids, float *scores, int64_t *ids);
void qv__qids_free(qv__qids *q);

/* ---- rpc_upsert.c ---- */

void qv__start_upsert(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                      grpc_byte_buffer *unused);
qv_status qv__upsert_done(qv__server *s, qv__entry *e, uint64_t upserted, grpc_byte_buffer **resp,
                          qv_error *err);
qv_status qv__upsert_chunk(qv__server *s, qv__entry **e, uint64_t *upserted,
                           const Quiver__V1__UpsertRequest *r, qv_error *err);

/* ---- rpc_import.c ---- */

/* ImportIndex: chunks are written into a stage (quiver/stage.h: a directory under the collections
 * root, cleaned at start), one RECV_MESSAGE at a time; at the end
 * of the stream a thread opens it (the manifest's sizes and CRC-32s are verified there),
 * measures recall, swaps it in and saves, so a polling thread never waits for that. */
typedef struct import_call {
  qv__stream st; /* first: its tag is the call's */
  qv__server *s;
  int have_header;
  char name[QV__NAME_MAX + 1];
  char server_path[1024];
  int create;
  int staged;       /* hold it as a staged version (rpc_rollout.c) */
  uint64_t version; /* its data version; 0 = serving + 1 */
  qv_build_opts opts;
  qv_stage *stage; /* a streamed import's files (NULL for server_path) */
} import_call;

void qv__start_import(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                      grpc_byte_buffer *unused);
qv_status qv__import_message(import_call *u, const Quiver__V1__ImportIndexRequest *r,
                             qv_error *errp);
qv_status qv__import_apply(import_call *u, grpc_byte_buffer **resp, qv_error *errp);
/* The end of an import with stage = true (u->staged) (rpc_rollout.c): src (opened and checked)
 * becomes e's staged version; e is claimed. src is consumed (closed) either way. */
qv_status qv__import_stage(import_call *u, qv__entry *e, qv_collection *src, qv_build_report *rep,
                           uint64_t *version, qv_error *err);
qv_status qv__h_rollout(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                        grpc_byte_buffer **resp, qv_error *err);

/* ---- rpc_build.c: BuildIndex, and what builds and imports share ---- */

const char *qv__build_outcome(qv_status st);
/* The last message of a successful build (gRPC and offline alike); strings in spec_buf
 * (INFO_BUF bytes). */
void qv__build_final(qv__entry *e, const qv_build_report *rep, double t0,
                     Quiver__V1__BuildIndexProgress *p, Quiver__V1__CollectionInfo *info,
                     char *spec_buf);
qv_status qv__long_work_begin(qv__server *s, const char *what, qv_error *err);
void qv__long_work_end(qv__server *s);
int qv__spawn_detached(void *(*fn)(void *), void *arg);
qv_status qv__build_opts_from(const qv__server *s, qv_build_opts *o, double recall_floor,
                              double target_recall, uint32_t eval_queries, uint32_t eval_k,
                              qv_error *err);
void qv__start_build(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                     grpc_byte_buffer *payload);
qv_status qv__build_prepare(qv__server *s, const Quiver__V1__BuildIndexRequest *r, qv__entry **e,
                            qv_build_opts *bo, int *claimed, qv_error *err);
qv_status qv__build_run(qv__server *s, qv__entry *e, qv_build_opts *opts, qv_progress_fn progress,
                        void *user, qv_build_report *rep, qv_error *err);

/* ---- metrics_collect.c ---- */

void qv__metrics_collect(void *user, qv__mbuf *o);

/* ---- watchdog.c ---- */

void qv__watchdog_start(qv__server *s, int port);
void qv__watchdog_stop(qv__server *s);

#endif

/* gRPC core plumbing for quiverd.
 *
 * One completion queue per polling thread; every call stays on the queue that accepted it. Each
 * event's tag is a qv__tag whose function runs the next step of that call's state machine:
 *   - unary calls (Search, admin, Health/Check): decoded, handled inline on the polling thread,
 *     answered with one batch; Delete the same, on a writer thread;
 *   - Upsert (client streaming): one RECV_MESSAGE outstanding at a time, each chunk applied as it
 *     arrives on a writer thread, the answer sent after the last chunk is applied and persisted;
 *     ImportIndex's chunks are staged on a writer thread too, its apply runs on its own;
 *   - BuildIndex (server streaming): the build runs on its own thread; progress goes out with one
 *     SEND_MESSAGE outstanding at a time (latest wins); the last message and the status go in one
 *     batch; a client cancel cancels the build;
 *   - anything else gets UNIMPLEMENTED (a generic request is kept posted for that).
 * See ../shared/docs/GRPC_CORE.md for the measured behaviour this follows. */
#define _GNU_SOURCE
#include "server.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <zlib.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "grpc/health/v1/health.pb-c.h"
#include "log.h"
#include "metrics.h"
#include "quiver/fsutil.h"
#include "quiver/kernels.h"
#include "quiver/rerank.h"
#include "quiver/v1/retrieval.pb-c.h"
#include "quiver_wire.h"
#include "status_map.h"
#include "strcheck.h"

typedef struct qv__tag {
  void (*fn)(void *self, int ok);
  int on_writer; /* run fn on a writer thread, not on the polling thread (below) */
  int ok;        /* while queued for a writer */
  struct qv__tag *next;
} qv__tag;

/* Writer threads: calls that write (Upsert and ImportIndex chunks, Delete) wait for a
 * collection's writers' mutex, its log's fsync and, when the log asks, a snapshot; on a polling
 * thread that wait would hold every call queued behind it (a search too). Their steps run here
 * instead, in arrival order per call (a call has one step outstanding at a time). */
enum { QV__WRITERS = 2 };

typedef enum { K_UNARY, K_CLIENT_STREAM, K_SERVER_STREAM } call_kind;

/* The methods, in kMethods order (the table is below, with the handlers). */
enum {
  M_SEARCH,
  M_CREATE,
  M_DROP,
  M_LIST,
  M_DESCRIBE,
  M_UPSERT,
  M_DELETE,
  M_BUILD,
  M_HEALTH,
  M_IMPORT,
  NMETHODS
};

typedef struct method method;
/* deadline: the call's (NULL = none); long handlers check it, and a stop, between steps. */
typedef qv_status (*unary_fn)(qv__server *s, const ProtobufCMessage *req,
                              const gpr_timespec *deadline, grpc_byte_buffer **resp, qv_error *err);

struct method {
  const char *path;
  call_kind kind;
  const ProtobufCMessageDescriptor *req_desc;
  unary_fn fn;
};

enum { NPENDING = 4 };

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
};

static void writers_push(qv__server *s, qv__tag *t, int ok) {
  t->ok = ok;
  t->next = NULL;
  pthread_mutex_lock(&s->wq_mu);
  if (s->wq_tail)
    s->wq_tail->next = t;
  else
    s->wq_head = t;
  s->wq_tail = t;
  pthread_cond_signal(&s->wq_cv);
  pthread_mutex_unlock(&s->wq_mu);
}

static void *writer_main(void *arg) {
  qv__server *s = arg;
  omp_set_num_threads((int)s->cfg->omp_threads);
  for (;;) {
    pthread_mutex_lock(&s->wq_mu);
    while (s->wq_head == NULL && !s->writers_stop)
      pthread_cond_wait(&s->wq_cv, &s->wq_mu);
    qv__tag *t = s->wq_head;
    if (t != NULL && (s->wq_head = t->next) == NULL)
      s->wq_tail = NULL;
    pthread_mutex_unlock(&s->wq_mu);
    if (t == NULL)
      return NULL; /* stopping, and nothing is left */
    t->fn(t, t->ok);
  }
}

/* Stops the writer threads once their queue is empty (the pollers are joined already, so
 * nothing more arrives). */
static void writers_stop(qv__server *s) {
  pthread_mutex_lock(&s->wq_mu);
  s->writers_stop = 1;
  pthread_cond_broadcast(&s->wq_cv);
  pthread_mutex_unlock(&s->wq_mu);
  for (int i = 0; i < s->nwriters; i++)
    pthread_join(s->writers[i], NULL);
  s->nwriters = 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static void (*g_blas_set)(int);
static int g_blas_search = 1;
static atomic_int g_blas_builds;

void qv__blas_threads_init(int searching) {
  g_blas_set = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
  g_blas_search = searching > 0 ? searching : 1;
  if (g_blas_set != NULL)
    g_blas_set(g_blas_search);
}

/* A build or import starts (+1) or ends (-1): BLAS may use every core while one runs. */
static void blas_build(int delta) {
  if (g_blas_set == NULL)
    return;
  int before = atomic_fetch_add(&g_blas_builds, delta);
  if (delta > 0 && before == 0)
    g_blas_set(omp_get_num_procs());
  else if (delta < 0 && before == 1)
    g_blas_set(g_blas_search);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A call to method `mi` (NMETHODS = unknown) ended with st, having started at t0. */
static void metrics_call(int mi, qv_status st, double t0) {
  qv__metrics_call(mi, qv__to_grpc(st), now_s() - t0);
}

/* How a build or import ended, for quiver_builds_total. */
static const char *build_outcome(qv_status st) {
  return st == QV_OK                                    ? "ok"
         : st == QV_EPRECONDITION || st == QV_ENOMEM    ? "refused"
         : st == QV_ECANCELLED || st == QV_EUNAVAILABLE ? "cancelled"
                                                        : "failed";
}

static grpc_byte_buffer *pack_msg(const ProtobufCMessage *m) {
  size_t len = protobuf_c_message_get_packed_size(m);
  grpc_slice s = grpc_slice_malloc(len);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* Decodes request bytes with the server's checks; NULL with err set when malformed. */
static ProtobufCMessage *decode_bytes(const ProtobufCMessageDescriptor *d, const uint8_t *data,
                                      size_t len, qv_error *err) {
  ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data);
  if (m == NULL) {
    qv_error_set(err, QV_EINVAL, "the request is not a valid %s message", d->name);
  } else if (qv__wire_check_strings(d, data, len, err) != QV_OK) {
    protobuf_c_message_free_unpacked(m, NULL);
    m = NULL;
  }
  return m;
}

/* Decodes a request; NULL with err set when missing or malformed. */
static ProtobufCMessage *decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d,
                                qv_error *err) {
  if (bb == NULL) {
    qv_error_set(err, QV_EINVAL, "the request carries no %s message", d->name);
    return NULL;
  }
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) {
    qv_error_set(err, QV_EINVAL, "the request message cannot be read (compression?)");
    return NULL;
  }
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  ProtobufCMessage *m = decode_bytes(d, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s), err);
  grpc_slice_unref(s);
  return m;
}

static int deadline_passed(gpr_timespec deadline) {
  return gpr_time_cmp(deadline, gpr_now(deadline.clock_type)) < 0;
}

/* Caller storage for the strings of one CollectionInfo. */
#define INFO_BUF                                                                                   \
  (QV_MAX_SPEC + sizeof(((qv_collection_stats *)0)->placement) +                                   \
   sizeof(((qv_collection_stats *)0)->open_note))

/* Fills info from an entry; strings point into spec_buf (INFO_BUF bytes of caller storage). */
static void fill_info(qv__entry *e, Quiver__V1__CollectionInfo *info, char *spec_buf) {
  quiver__v1__collection_info__init(info);
  qv_collection_stats s;
  qv_collection_stats_get(e->col, &s, NULL);
  memcpy(spec_buf, s.spec, QV_MAX_SPEC);
  memcpy(spec_buf + QV_MAX_SPEC, s.placement, sizeof s.placement);
  info->placement = spec_buf + QV_MAX_SPEC;
  char *note = spec_buf + QV_MAX_SPEC + sizeof s.placement;
  memcpy(note, s.open_note, sizeof s.open_note);
  info->storage_note = note;
  info->build_recall = s.build_recall;
  info->build_recall_k = s.build_recall_k;
  info->build_recall_nprobe = s.build_nprobe;
  info->snapshot_version = s.disk_version;
  info->wal_bytes = s.wal_bytes;
  info->wal_records = s.wal_records;
  qv__batcher_stats bs;
  qv__batcher_stats_get(e->batcher, &bs);
  info->batched_requests = bs.requests;
  info->batches = bs.batches;
  info->batched_queries = bs.queries;
  info->batch_expired = bs.expired;
  info->device = qv__device_to_pb(s.device);
  info->gpu = s.gpu;
  info->device_bytes = s.device_bytes;
  info->tombstones = s.tombstones;
  info->gpu_fallbacks = s.gpu_fallbacks;
  info->deferred_deletes = s.deferred_deletes != 0;
  info->name = e->name;
  info->dim = (uint32_t)s.dim;
  info->metric = qv__metric_to_pb(s.metric);
  info->index_spec = spec_buf;
  info->state = atomic_load(&e->building) ? QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_BUILDING
                : s.trained               ? QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_READY
                            : QUIVER__V1__COLLECTION_STATE__COLLECTION_STATE_NOT_BUILT;
  info->default_nprobe = s.default_nprobe;
  info->count = s.count;
  info->indexed = s.indexed;
  info->nlist = s.nlist;
  info->vector_bytes = s.vector_bytes;
  info->index_bytes = s.index_bytes;
  info->memory_bytes = s.vector_bytes + s.index_bytes;
  info->index_version = s.version;
  info->n_features = (uint32_t)s.n_features;
}

/* ---- finishing a call: status (+ message) in one batch ------------------------------------ */

typedef struct finisher {
  qv__tag tag;
  grpc_call *call;
  grpc_metadata_array md;
  grpc_byte_buffer *resp;
  grpc_slice details;
  int cancelled;
} finisher;

/* Calls accepted and not yet finished (one server per process). At shutdown, once it is 0 only
 * idle connections are left, which gRPC would otherwise wait for until the grace period ends. */
static atomic_int g_calls;

static void on_finished(void *self, int ok) {
  (void)ok;
  finisher *f = self;
  atomic_fetch_sub(&g_calls, 1);
  if (f->resp)
    grpc_byte_buffer_destroy(f->resp);
  grpc_slice_unref(f->details);
  grpc_metadata_array_destroy(&f->md);
  grpc_call_unref(f->call);
  free(f);
}

/* Sends initial metadata (unless already sent), the optional response and the status; takes
 * ownership of call, md (moved) and resp. */
static void finish_call(grpc_call *call, grpc_metadata_array *md, int initial_sent,
                        grpc_byte_buffer *resp, qv_status st, const char *msg) {
  finisher *f = calloc(1, sizeof *f);
  if (f == NULL) { /* cannot even answer: drop the call */
    atomic_fetch_sub(&g_calls, 1);
    grpc_call_cancel(call, NULL);
    grpc_call_unref(call);
    if (resp)
      grpc_byte_buffer_destroy(resp);
    if (md)
      grpc_metadata_array_destroy(md);
    return;
  }
  f->tag.fn = on_finished;
  f->call = call;
  if (md)
    f->md = *md;
  else
    grpc_metadata_array_init(&f->md);
  f->resp = st == QV_OK ? resp : NULL;
  if (st != QV_OK && resp)
    grpc_byte_buffer_destroy(resp);
  f->details = grpc_slice_from_copied_string(st == QV_OK ? "" : msg);
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (!initial_sent)
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (f->resp) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = f->resp;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = qv__to_grpc(st);
  ops[n++].data.send_status_from_server.status_details = &f->details;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = &f->cancelled;
  if (grpc_call_start_batch(call, ops, n, &f->tag, NULL) != GRPC_CALL_OK)
    on_finished(f, 0);
}

static void log_failure(const char *method, const char *collection, qv_status st, const char *msg) {
  grpc_status_code g = qv__to_grpc(st);
  /* A name from the request is logged only when it is a valid one (no spaces, no '='): it must
   * not forge fields of a structured log line. */
  if (collection != NULL && qv__name_check(collection, NULL) != QV_OK)
    collection = "(invalid-name)";
  if (g == GRPC_STATUS_INTERNAL || g == GRPC_STATUS_DATA_LOSS)
    QV_LOG_E("%s collection=%s status=%s: %s", method, collection ? collection : "-",
             qv__grpc_name(g), msg);
  else
    QV_LOG_I("%s collection=%s status=%s: %s", method, collection ? collection : "-",
             qv__grpc_name(g), msg);
}

/* The slow query log: a Search slower than --slow-query-ms, with what shaped it (never the
 * query vectors). n: its queries; batch: the queries of the index search that answered it (0:
 * run alone). */
static void slow_query(qv__server *s, const Quiver__V1__SearchRequest *r, double t0,
                       uint32_t batch) {
  const double ms = (now_s() - t0) * 1e3;
  if (s->cfg->slow_query_ms <= 0 || ms < (double)s->cfg->slow_query_ms)
    return;
  QV_LOG_W("slow query: method=Search collection=%s floats=%zu k=%u nprobe=%u rerank=%s "
           "candidates=%u exact=%s batch_queries=%u ms=%.2f threshold_ms=%lld",
           r->collection ? r->collection : "-", r->n_queries, r->k, r->nprobe,
           r->rerank ? "yes" : "no", r->rerank ? r->rerank->candidates : 0, r->exact ? "yes" : "no",
           batch, ms, (long long)s->cfg->slow_query_ms);
}

/* ---- unary handlers --------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* A sorted copy of an id list (the rerank stage looks ids up by binary search). */
static int64_t *sorted_copy(const int64_t *ids, size_t n) {
  int64_t *out = malloc((n ? n : 1) * sizeof *out);
  if (out != NULL && n > 0) {
    memcpy(out, ids, n * sizeof *out);
    qsort(out, n, sizeof *out, cmp_i64);
  }
  return out;
}

static qv_status search_reranked(qv__server *s, qv__entry *e, const Quiver__V1__SearchRequest *r,
                                 const float *queries, size_t n, float *scores, int64_t *ids,
                                 qv_error *err) {
  const Quiver__V1__RerankOptions *o = r->rerank;
  if (r->exact)
    return qv_error_set(err, QV_EINVAL,
                        "exact and rerank exclude each other: exact search is "
                        "already exact; send one of them");
  qv_collection_stats cs;
  qv_collection_stats_get(e->col, &cs, NULL);
  if (o->n_weights > 1 && o->n_weights != 1 + cs.n_features)
    return qv_error_set(err, QV_EINVAL,
                        "rerank.weights has %zu entries; items of collection '%s' carry %zu "
                        "features: send 1 weight (similarity) or %zu (similarity + features)",
                        o->n_weights, e->name, cs.n_features, 1 + cs.n_features);
  if (o->candidates != 0 && o->candidates < r->k)
    return qv_error_set(err, QV_EINVAL, "rerank.candidates = %u is below k = %u", o->candidates,
                        r->k);
  if (o->candidates > (uint64_t)s->cfg->max_candidates)
    return qv_error_set(err, QV_EINVAL,
                        "rerank.candidates = %u is above the server's limit %lld "
                        "(--max-candidates)",
                        o->candidates, (long long)s->cfg->max_candidates);
  qv_rerank_params rp;
  qv_rerank_params_init(&rp);
  rp.refine = o->refine;
  rp.weights = o->n_weights ? o->weights : NULL;
  rp.n_features = o->n_weights > 1 ? o->n_weights - 1 : 0;
  rp.mmr_lambda = o->mmr_lambda;
  int64_t *allow = o->n_allow_ids ? sorted_copy(o->allow_ids, o->n_allow_ids) : NULL;
  int64_t *deny = o->n_deny_ids ? sorted_copy(o->deny_ids, o->n_deny_ids) : NULL;
  qv_status st;
  if ((o->n_allow_ids && allow == NULL) || (o->n_deny_ids && deny == NULL)) {
    st = qv_error_set(err, QV_ENOMEM, "out of memory for the filter lists");
  } else {
    rp.allow = allow;
    rp.n_allow = o->n_allow_ids;
    rp.deny = deny;
    rp.n_deny = o->n_deny_ids;
    qv_search_params p = {.k = r->k, .nprobe = r->nprobe};
    st = qv_collection_search_refined(e->col, queries, n, &p, o->candidates, &rp, scores, ids, err);
  }
  free(allow);
  free(deny);
  return st;
}

/* Checks a search request against collection e: *n gets the number of queries. */
/* The work a search asks for, in multiply-adds (a query component against a stored one): the
 * coarse quantizer and the probed lists (or every vector: Flat, exact), then the rerank stage
 * (refine: k' rows per query; MMR: k x k' pairs per query). */
static double search_work(const Quiver__V1__SearchRequest *r, const qv_collection_stats *cs,
                          size_t n) {
  const double d = (double)cs->dim, count = (double)cs->count;
  double per = count * d; /* exact, or Flat */
  if (!r->exact && cs->nlist > 0) {
    const double probe = r->nprobe ? r->nprobe : cs->default_nprobe ? cs->default_nprobe : 1;
    per = ((double)cs->nlist + probe * count / cs->nlist) * d;
  }
  if (r->rerank != NULL) {
    const double k = r->k, kp = r->rerank->candidates ? r->rerank->candidates : 4.0 * r->k;
    per += kp * d;
    if (r->rerank->mmr_lambda != 0)
      per += k * kp * d;
  }
  return per * (double)n;
}

static qv_status check_search(qv__server *s, qv__entry *e, const Quiver__V1__SearchRequest *r,
                              const qv_collection_stats *cs, size_t *n, qv_error *err) {
  const size_t dim = cs->dim;
  *n = 0;
  if (r->n_queries == 0)
    return qv_error_set(err, QV_EINVAL, "no queries: send n x %zu floats", dim);
  if (r->dim != 0 && r->dim != dim)
    return qv_error_set(err, QV_EINVAL,
                        "query dimension %u does not match collection '%s' (dimension %zu)", r->dim,
                        e->name, dim);
  if (r->n_queries % dim != 0)
    return qv_error_set(err, QV_EINVAL,
                        "queries hold %zu floats, not a multiple of collection '%s' dimension %zu",
                        r->n_queries, e->name, dim);
  if (r->k < 1 || r->k > (uint64_t)s->cfg->max_k)
    return qv_error_set(err, QV_EINVAL, "k = %u is out of range 1..%lld (server --max-k)", r->k,
                        (long long)s->cfg->max_k);
  if ((*n = r->n_queries / dim) > (size_t)s->cfg->max_queries)
    return qv_error_set(err, QV_ENOMEM,
                        "%zu queries in one request exceed the server limit %lld: split the batch",
                        *n, (long long)s->cfg->max_queries);
  const double work = search_work(r, cs, *n), cap = (double)s->cfg->max_search_gwork * 1e9;
  if (cap > 0 && work > cap)
    return qv_error_set(err, QV_ENOMEM,
                        "this search is about %.0f G multiply-adds of work, over the server's "
                        "--max-search-gwork %lld: split the batch, or lower k, candidates or "
                        "nprobe",
                        work / 1e9, (long long)s->cfg->max_search_gwork);
  return QV_OK;
}

/* Whether a call's work should go on: QV_EDEADLINE once its deadline passed, QV_EUNAVAILABLE
 * once the server stops. */
static qv_status still_wanted(qv__server *s, const gpr_timespec *deadline, size_t done,
                              size_t total, qv_error *err) {
  if (deadline != NULL && deadline_passed(*deadline))
    return qv_error_set(err, QV_EDEADLINE,
                        "the deadline passed after %zu of %zu queries: the rest were not searched",
                        done, total);
  if (atomic_load(&s->stopping))
    return qv_error_set(err, QV_EUNAVAILABLE,
                        "the server is shutting down: %zu of %zu queries were searched; retry "
                        "elsewhere or after the restart",
                        done, total);
  return QV_OK;
}

static qv_status h_search(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                          grpc_byte_buffer **resp, qv_error *err) {
  const Quiver__V1__SearchRequest *r = (const Quiver__V1__SearchRequest *)m;
  if (r->collection == NULL || r->collection[0] == '\0')
    return qv_error_set(err, QV_EINVAL, "collection is required");
  qv__entry *e;
  qv_status st = qv__registry_get(s->reg, r->collection, &e, err);
  if (st != QV_OK)
    return st;
  qv_collection_stats cs;
  qv_collection_stats_get(e->col, &cs, NULL);
  size_t n = 0;
  float *scores = NULL;
  int64_t *ids = NULL;
  if ((st = check_search(s, e, r, &cs, &n, err)) != QV_OK) {
    /* said */
  } else if ((scores = malloc(n * r->k * sizeof *scores)) == NULL ||
             (ids = malloc(n * r->k * sizeof *ids)) == NULL) {
    st = qv_error_set(err, QV_ENOMEM, "out of memory for %zu x %u results", n, r->k);
  } else {
    /* In steps of about half a G multiply-adds: between them the call's deadline and a stop
     * are checked, so that neither waits for the whole of a long search. */
    const double per_query = search_work(r, &cs, 1);
    size_t step = per_query > 0 ? (size_t)(5e8 / per_query) : n;
    step = step < 1 ? 1 : step > n ? n : step;
    qv_search_params p = {.k = r->k, .nprobe = r->nprobe};
    for (size_t q0 = 0; st == QV_OK && q0 < n; q0 += step) {
      const size_t m = n - q0 < step ? n - q0 : step;
      const float *q = r->queries + q0 * cs.dim;
      if (q0 > 0 && (st = still_wanted(s, deadline, q0, n, err)) != QV_OK)
        break;
      st = r->rerank != NULL
               ? search_reranked(s, e, r, q, m, scores + q0 * r->k, ids + q0 * r->k, err)
           : r->exact
               ? qv_collection_search_exact(e->col, q, m, &p, scores + q0 * r->k, ids + q0 * r->k,
                                            err)
               : qv_collection_search(e->col, q, m, &p, scores + q0 * r->k, ids + q0 * r->k, err);
    }
  }
  if (st == QV_OK) {
    qv__metrics_queries(n);
    Quiver__V1__SearchResponse out = QUIVER__V1__SEARCH_RESPONSE__INIT;
    out.k = r->k;
    out.num_queries = (uint32_t)n;
    out.n_ids = out.n_scores = n * r->k;
    out.ids = ids;
    out.scores = scores;
    *resp = pack_msg(&out.base);
  }
  free(scores);
  free(ids);
  qv__registry_put(s->reg, e);
  return st;
}

/* ---- batched search --------------------------------------------------------------------- */

/* One search on its way through the collection's batcher: the request, the call, and room for
 * the answer, in one allocation. */
typedef struct search_call {
  qv__bq bq;
  double t0; /* arrival */
  qv__server *s;
  qv__entry *e;
  grpc_call *call;
  grpc_metadata_array md;
  ProtobufCMessage *req;
} search_call;

static void on_batched(qv__bq *r) {
  search_call *sc = (search_call *)r;
  grpc_byte_buffer *resp = NULL;
  if (r->st == QV_OK) {
    qv__metrics_queries(r->n);
    Quiver__V1__SearchResponse out = QUIVER__V1__SEARCH_RESPONSE__INIT;
    out.k = r->k;
    out.num_queries = (uint32_t)r->n;
    out.n_ids = out.n_scores = r->n * r->k;
    out.ids = r->ids;
    out.scores = r->scores;
    resp = pack_msg(&out.base);
  } else {
    log_failure("Search", sc->e->name, r->st, r->err.msg);
  }
  metrics_call(M_SEARCH, r->st, sc->t0);
  finish_call(sc->call, &sc->md, 0, resp, r->st, r->err.msg);
  if (r->st == QV_OK)
    slow_query(sc->s, (const Quiver__V1__SearchRequest *)sc->req, sc->t0, r->batch_queries);
  protobuf_c_message_free_unpacked(sc->req, NULL);
  qv__registry_put(sc->s->reg, sc->e);
  free(sc);
}

/* Hands a plain search to its collection's batcher. Returns 0 when the request is not one the
 * batcher takes (rerank, exact, batching off): the caller runs it inline. Otherwise the call is
 * answered (now, when it is refused, or later by the batcher) and req is consumed. */
static int search_batched(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                          gpr_timespec deadline, ProtobufCMessage *req, double t0) {
  Quiver__V1__SearchRequest *r = (Quiver__V1__SearchRequest *)req;
  if (r->rerank != NULL || r->exact || r->collection == NULL || r->collection[0] == '\0')
    return 0;
  qv_error err = {0};
  qv__entry *e;
  if (qv__registry_get(s->reg, r->collection, &e, &err) != QV_OK)
    return 0; /* the inline path says NOT_FOUND */
  if (e->batcher == NULL) {
    qv__registry_put(s->reg, e);
    return 0;
  }
  qv_collection_stats cs;
  qv_collection_stats_get(e->col, &cs, NULL);
  size_t n = 0;
  qv_status st = check_search(s, e, r, &cs, &n, &err);
  /* What would fail the whole coalesced search is refused here, for this request only, in the
   * order the index layer checks. */
  if (st == QV_OK && cs.nlist > 0 && r->nprobe > cs.nlist)
    st = qv_error_set(&err, QV_EINVAL, "nprobe = %u exceeds nlist = %u of index '%s'", r->nprobe,
                      cs.nlist, cs.spec);
  if (st == QV_OK)
    st = qv_check_vectors(r->queries, n, cs.dim, cs.metric == QV_METRIC_COSINE, "query", &err);
  if (st == QV_OK && !cs.trained)
    st = qv_error_set(&err, QV_EPRECONDITION,
                      "index '%s' is not built yet: build it first (%llu vectors stored)", cs.spec,
                      (unsigned long long)cs.count);
  search_call *sc = NULL;
  const size_t nk = n * r->k;
  if (st == QV_OK && (sc = malloc(sizeof *sc + nk * (sizeof(float) + sizeof(int64_t)))) == NULL)
    st = qv_error_set(&err, QV_ENOMEM, "out of memory for %zu x %u results", n, r->k);
  if (st != QV_OK) {
    log_failure("Search", e->name, st, err.msg);
    metrics_call(M_SEARCH, st, t0);
    finish_call(call, md, 0, NULL, st, err.msg);
    protobuf_c_message_free_unpacked(req, NULL);
    qv__registry_put(s->reg, e);
    return 1;
  }
  memset(&sc->bq, 0, sizeof sc->bq);
  sc->t0 = t0;
  sc->s = s;
  sc->e = e;
  sc->call = call;
  sc->md = *md;
  sc->req = req;
  sc->bq.q = r->queries;
  sc->bq.n = n;
  sc->bq.k = r->k;
  sc->bq.nprobe = r->nprobe;
  sc->bq.ids = (int64_t *)(sc + 1);
  sc->bq.scores = (float *)(sc->bq.ids + nk);
  sc->bq.done = on_batched;
  if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) != 0) {
    gpr_timespec left = gpr_time_sub(deadline, gpr_now(deadline.clock_type));
    sc->bq.deadline = now_s() + (double)left.tv_sec + left.tv_nsec * 1e-9;
  }
  /* This thread may lead the batch and answer sc (dropping its reference) before submit
   * returns: hold the entry (and so its batcher) until then. */
  atomic_fetch_add(&e->refs, 1);
  qv__batcher_submit(e->batcher, &sc->bq);
  qv__registry_put(s->reg, e);
  return 1;
}

static qv_status h_create(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                          grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__CreateCollectionRequest *r = (const Quiver__V1__CreateCollectionRequest *)m;
  qv_status st = qv__name_check(r->name, err);
  if (st != QV_OK)
    return st;
  qv_collection_opts o;
  qv_collection_opts_init(&o);
  if (r->dim == 0 || r->dim > QV_MAX_DIM)
    return qv_error_set(err, QV_EINVAL, "dim = %u is out of range 1..%d", r->dim, QV_MAX_DIM);
  o.dim = r->dim;
  if (qv__metric_from_pb(r->metric, &o.metric) != 0)
    return qv_error_set(err, QV_EINVAL,
                        "metric is required: METRIC_L2, METRIC_IP or METRIC_COSINE (got %d)",
                        (int)r->metric);
  o.spec = r->index_spec && r->index_spec[0] ? r->index_spec : "Flat";
  o.default_nprobe = r->default_nprobe;
  o.train_sample = r->train_sample;
  o.n_features = r->n_features;
  o.deferred_deletes = r->deferred_deletes;
  if (qv__device_from_pb(r->device, s->default_device, &o.device) != 0)
    return qv_error_set(err, QV_EINVAL,
                        "device %d is unknown: DEVICE_AUTO, DEVICE_CPU or DEVICE_GPU (or unset for "
                        "the server default)",
                        (int)r->device);
  qv__entry *e;
  if ((st = qv__registry_create(s->reg, r->name, &o, &e, err)) != QV_OK)
    return st;
  Quiver__V1__CollectionInfo info;
  char spec[INFO_BUF];
  fill_info(e, &info, spec);
  *resp = pack_msg(&info.base);
  QV_LOG_I("CreateCollection collection=%s dim=%zu metric=%s spec=%s device=%s (%s)", e->name,
           o.dim, qv_metric_name(o.metric), spec, qv_device_name(o.device), info.placement);
  qv__registry_put(s->reg, e);
  return QV_OK;
}

static qv_status h_drop(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                        grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__DropCollectionRequest *r = (const Quiver__V1__DropCollectionRequest *)m;
  qv_status st = qv__registry_drop(s->reg, r->name, err);
  if (st != QV_OK)
    return st;
  QV_LOG_I("DropCollection collection=%s", r->name);
  Quiver__V1__DropCollectionResponse out = QUIVER__V1__DROP_COLLECTION_RESPONSE__INIT;
  *resp = pack_msg(&out.base);
  return QV_OK;
}

static qv_status h_describe(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                            grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__DescribeCollectionRequest *r = (const Quiver__V1__DescribeCollectionRequest *)m;
  qv__entry *e;
  qv_status st = qv__registry_get(s->reg, r->name, &e, err);
  if (st != QV_OK)
    return st;
  Quiver__V1__CollectionInfo info;
  char spec[INFO_BUF];
  fill_info(e, &info, spec);
  *resp = pack_msg(&info.base);
  qv__registry_put(s->reg, e);
  return QV_OK;
}

static qv_status h_list(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                        grpc_byte_buffer **resp, qv_error *err) {
  (void)unused, (void)m;
  qv__entry **es;
  size_t n;
  qv_status st = qv__registry_list(s->reg, &es, &n, err);
  if (st != QV_OK)
    return st;
  Quiver__V1__CollectionInfo *infos = calloc(n ? n : 1, sizeof *infos);
  Quiver__V1__CollectionInfo **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  char(*specs)[INFO_BUF] = calloc(n ? n : 1, INFO_BUF);
  if (!infos || !ptrs || !specs) {
    st = qv_error_set(err, QV_ENOMEM, "out of memory listing %zu collections", n);
  } else {
    for (size_t i = 0; i < n; i++) {
      fill_info(es[i], &infos[i], specs[i]);
      ptrs[i] = &infos[i];
    }
    Quiver__V1__ListCollectionsResponse out = QUIVER__V1__LIST_COLLECTIONS_RESPONSE__INIT;
    out.n_collections = n;
    out.collections = ptrs;
    *resp = pack_msg(&out.base);
  }
  for (size_t i = 0; i < n; i++)
    qv__registry_put(s->reg, es[i]);
  free(es);
  free(infos);
  free(ptrs);
  free(specs);
  return st;
}

static qv_status h_delete(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                          grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Quiver__V1__DeleteRequest *r = (const Quiver__V1__DeleteRequest *)m;
  qv__entry *e;
  qv_status st = qv__registry_get(s->reg, r->collection, &e, err);
  if (st != QV_OK)
    return st;
  size_t deleted = 0;
  st = qv_collection_delete(e->col, r->n_ids, r->ids, &deleted, err);
  /* The delete is in the write-ahead log (synced per --wal-sync) before it returned. */
  if (st == QV_OK && deleted > 0)
    st = qv__entry_wrote(s->reg, e, err);
  if (st == QV_OK) {
    qv_collection_stats cs;
    qv_collection_stats_get(e->col, &cs, NULL);
    Quiver__V1__DeleteResponse out = QUIVER__V1__DELETE_RESPONSE__INIT;
    out.deleted = deleted;
    out.count = cs.count;
    *resp = pack_msg(&out.base);
  }
  qv__registry_put(s->reg, e);
  return st;
}

static qv_status h_health(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *unused,
                          grpc_byte_buffer **resp, qv_error *err) {
  (void)unused;
  const Grpc__Health__V1__HealthCheckRequest *r = (const Grpc__Health__V1__HealthCheckRequest *)m;
  const char *svc = r->service ? r->service : "";
  if (svc[0] != '\0' && strcmp(svc, "quiver.v1.Retrieval") != 0)
    return qv_error_set(err, QV_ENOTFOUND, "unknown service '%.100s'", svc);
  Grpc__Health__V1__HealthCheckResponse out = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  out.status = atomic_load(&s->stopping) || atomic_load(&s->accept_dead)
                   ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                   : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  *resp = pack_msg(&out.base);
  return QV_OK;
}

/* ---- the method table ------------------------------------------------------------------- */

static const method kMethods[NMETHODS] = {
    [M_SEARCH] = {"/quiver.v1.Retrieval/Search", K_UNARY, &quiver__v1__search_request__descriptor,
                  h_search},
    [M_CREATE] = {"/quiver.v1.Retrieval/CreateCollection", K_UNARY,
                  &quiver__v1__create_collection_request__descriptor, h_create},
    [M_DROP] = {"/quiver.v1.Retrieval/DropCollection", K_UNARY,
                &quiver__v1__drop_collection_request__descriptor, h_drop},
    [M_LIST] = {"/quiver.v1.Retrieval/ListCollections", K_UNARY,
                &quiver__v1__list_collections_request__descriptor, h_list},
    [M_DESCRIBE] = {"/quiver.v1.Retrieval/DescribeCollection", K_UNARY,
                    &quiver__v1__describe_collection_request__descriptor, h_describe},
    [M_UPSERT] = {"/quiver.v1.Retrieval/Upsert", K_CLIENT_STREAM,
                  &quiver__v1__upsert_request__descriptor, NULL},
    [M_DELETE] = {"/quiver.v1.Retrieval/Delete", K_UNARY, &quiver__v1__delete_request__descriptor,
                  h_delete},
    [M_BUILD] = {"/quiver.v1.Retrieval/BuildIndex", K_SERVER_STREAM,
                 &quiver__v1__build_index_request__descriptor, NULL},
    [M_HEALTH] = {"/grpc.health.v1.Health/Check", K_UNARY,
                  &grpc__health__v1__health_check_request__descriptor, h_health},
    [M_IMPORT] = {"/quiver.v1.Retrieval/ImportIndex", K_CLIENT_STREAM,
                  &quiver__v1__import_index_request__descriptor, NULL},
};

static const char *method_short(const method *m) {
  const char *p = strrchr(m->path, '/');
  return p ? p + 1 : m->path;
}

/* ---- upsert stream ---------------------------------------------------------------------- */

typedef struct upsert_call {
  qv__tag tag;
  qv__server *s;
  grpc_call *call;
  grpc_metadata_array md;
  grpc_byte_buffer *recv;
  qv__entry *e;
  uint64_t upserted;
  double t0;
} upsert_call;

static void upsert_end(upsert_call *u, qv_status st, const char *msg, grpc_byte_buffer *resp) {
  if (st != QV_OK)
    log_failure("Upsert", u->e ? u->e->name : NULL, st, msg);
  metrics_call(M_UPSERT, st, u->t0);
  finish_call(u->call, &u->md, 0, resp, st, msg);
  if (u->e)
    qv__registry_put(u->s->reg, u->e);
  free(u);
}

static void upsert_post_recv(upsert_call *u) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &u->recv;
  u->recv = NULL;
  if (grpc_call_start_batch(u->call, &op, 1, &u->tag, NULL) != GRPC_CALL_OK)
    upsert_end(u, QV_EINTERNAL, "cannot read the next upsert message", NULL);
}

/* The end of an upsert stream: every chunk is in the write-ahead log already (synced per
 * --wal-sync); saves when the log asks for it, then the answer. */
static qv_status upsert_done(qv__server *s, qv__entry *e, uint64_t upserted,
                             grpc_byte_buffer **resp, qv_error *err) {
  if (e == NULL)
    return qv_error_set(err, QV_EINVAL,
                        "empty upsert stream: send at least one message naming the collection");
  qv_status st;
  if (upserted > 0 && (st = qv__entry_wrote(s->reg, e, err)) != QV_OK)
    return st;
  qv_collection_stats cs;
  qv_collection_stats_get(e->col, &cs, NULL);
  Quiver__V1__UpsertResponse out = QUIVER__V1__UPSERT_RESPONSE__INIT;
  out.upserted = upserted;
  out.count = cs.count;
  QV_LOG_D("Upsert collection=%s upserted=%llu count=%llu", e->name, (unsigned long long)upserted,
           (unsigned long long)cs.count);
  *resp = pack_msg(&out.base);
  return QV_OK;
}

/* Applies one upsert message; the first names the collection (*e gets a reference to it). */
static qv_status upsert_chunk(qv__server *s, qv__entry **e, uint64_t *upserted,
                              const Quiver__V1__UpsertRequest *r, qv_error *err) {
  const char *name = r->collection ? r->collection : "";
  qv_status st;
  if (*e == NULL) {
    if (name[0] == '\0')
      return qv_error_set(err, QV_EINVAL, "the first upsert message must name the collection");
    if ((st = qv__registry_get(s->reg, name, e, err)) != QV_OK)
      return st;
  } else if (name[0] != '\0' && strcmp(name, (*e)->name) != 0) {
    return qv_error_set(err, QV_EINVAL,
                        "one upsert stream goes to one collection ('%s', not '%.80s')", (*e)->name,
                        name);
  }
  qv_collection_stats cs;
  qv_collection_stats_get((*e)->col, &cs, NULL);
  if (r->n_vectors != r->n_ids * cs.dim)
    return qv_error_set(err, QV_EINVAL,
                        "upsert message has %zu floats for %zu ids; collection '%s' needs %zu "
                        "(dimension %zu)",
                        r->n_vectors, r->n_ids, (*e)->name, r->n_ids * cs.dim, cs.dim);
  if (r->n_features != 0 && r->n_features != r->n_ids * cs.n_features)
    return qv_error_set(err, QV_EINVAL,
                        "upsert message has %zu features for %zu ids; items of collection '%s' "
                        "carry %zu each (send none for zeros)",
                        r->n_features, r->n_ids, (*e)->name, cs.n_features);
  if ((st = qv_collection_add_features((*e)->col, r->n_ids, r->ids, r->vectors,
                                       r->n_features ? r->features : NULL, err)) != QV_OK)
    return st;
  *upserted += r->n_ids;
  if (r->n_ids > 0)
    atomic_store(&(*e)->dirty, 1);
  return QV_OK;
}

static void on_upsert_recv(void *self, int ok) {
  upsert_call *u = self;
  qv_error err = {0};
  if (!ok) { /* the call is gone (cancelled, deadline) */
    if (u->e && u->upserted > 0)
      atomic_store(&u->e->dirty, 1);
    upsert_end(u, QV_ECANCELLED, "upsert stream broken before its end", NULL);
    return;
  }
  if (u->recv == NULL) { /* end of stream: persist, then acknowledge */
    grpc_byte_buffer *resp = NULL;
    qv_status st = upsert_done(u->s, u->e, u->upserted, &resp, &err);
    upsert_end(u, st, err.msg, resp);
    return;
  }
  Quiver__V1__UpsertRequest *r =
      (Quiver__V1__UpsertRequest *)decode(u->recv, &quiver__v1__upsert_request__descriptor, &err);
  grpc_byte_buffer_destroy(u->recv);
  u->recv = NULL;
  qv_status st = r ? upsert_chunk(u->s, &u->e, &u->upserted, r, &err) : QV_EINVAL;
  if (r)
    protobuf_c_message_free_unpacked(&r->base, NULL);
  if (st != QV_OK)
    upsert_end(u, st, err.msg, NULL);
  else
    upsert_post_recv(u);
}

static void start_upsert(qv__server *s, grpc_call *call, grpc_metadata_array *md) {
  upsert_call *u = calloc(1, sizeof *u);
  if (u == NULL) {
    finish_call(call, md, 0, NULL, QV_ENOMEM, "out of memory");
    return;
  }
  u->tag.fn = on_upsert_recv;
  u->tag.on_writer = 1;
  u->s = s;
  u->call = call;
  u->md = *md;
  u->t0 = now_s();
  upsert_post_recv(u);
}

/* ---- long-running work (builds, imports) -------------------------------------------------- */

/* Counts a build or import that is about to start, checked against a stop under one lock: the
 * stop either waits for it or it never starts. */
static qv_status long_work_begin(qv__server *s, const char *what, qv_error *err) {
  qv_status st = QV_OK;
  pthread_mutex_lock(&s->build_mu);
  if (atomic_load(&s->stopping))
    st = qv_error_set(err, QV_EUNAVAILABLE, "the server is shutting down: %s after restart", what);
  else
    s->builds++;
  pthread_mutex_unlock(&s->build_mu);
  return st;
}

static void long_work_end(qv__server *s) {
  pthread_mutex_lock(&s->build_mu);
  s->builds--;
  pthread_cond_broadcast(&s->build_cv);
  pthread_mutex_unlock(&s->build_mu);
}

static int spawn_detached(void *(*fn)(void *), void *arg) {
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  const int rc = pthread_create(&t, &a, fn, arg);
  pthread_attr_destroy(&a);
  return rc == 0;
}

/* A build's or import's recall options from the request (0 = the default), checked against the
 * index layer's ranges and the server's max k. */
static qv_status build_opts_from(const qv__server *s, qv_build_opts *o, double recall_floor,
                                 double target_recall, uint32_t eval_queries, uint32_t eval_k,
                                 qv_error *err) {
  qv_build_opts_init(o);
  o->recall_floor = recall_floor;
  o->target_recall = target_recall;
  if (eval_queries)
    o->eval_queries = eval_queries;
  if (eval_k)
    o->eval_k = eval_k;
  if (o->eval_k > s->cfg->max_k)
    return qv_error_set(err, QV_EINVAL, "eval_k %u exceeds the server's max k %lld", o->eval_k,
                        (long long)s->cfg->max_k);
  return qv_build_opts_check(o, err);
}

/* ---- import stream ---------------------------------------------------------------------- */

/* ImportIndex: chunks are written into a staging directory under the collections root
 * (".import-NAME-XXXXXX", skipped and cleaned at start), one RECV_MESSAGE at a time; at the end
 * of the stream a thread opens it (the manifest's sizes and CRC-32s are verified there),
 * measures recall, swaps it in and saves, so a polling thread never waits for that. */
typedef struct import_call {
  qv__tag tag;
  qv__server *s;
  grpc_call *call;
  grpc_metadata_array md;
  grpc_byte_buffer *recv;
  int have_header;
  char name[QV__NAME_MAX + 1];
  char server_path[1024];
  int create;
  qv_build_opts opts;
  char stage[1300];
  uint64_t bytes;
  uint32_t files;
  char last_file[64];
  double t0;
} import_call;

static void import_end(import_call *u, qv_status st, const char *msg, grpc_byte_buffer *resp) {
  if (st != QV_OK)
    log_failure("ImportIndex", u->name[0] ? u->name : NULL, st, msg);
  if (u->stage[0] != '\0') /* before the answer: a client that sees it sees no staging left */
    qv_remove_tree(u->stage, NULL);
  metrics_call(M_IMPORT, st, u->t0);
  if (u->have_header)
    qv__metrics_build("import", build_outcome(st), now_s() - u->t0);
  finish_call(u->call, &u->md, 0, resp, st, msg);
  free(u);
}

static void import_post_recv(import_call *u) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &u->recv;
  u->recv = NULL;
  if (grpc_call_start_batch(u->call, &op, 1, &u->tag, NULL) != GRPC_CALL_OK)
    import_end(u, QV_EINTERNAL, "cannot read the next import message", NULL);
}

/* Only the files a collection directory holds: MANIFEST.json and vNNNNNN/{index.faiss,
 * vectors.npy, ids.npy, features.npy, MANIFEST.json}. */
static int import_file_ok(const char *f) {
  static const char *const names[] = {"index.faiss", "vectors.npy", "ids.npy", "features.npy",
                                      "MANIFEST.json"};
  if (strcmp(f, "MANIFEST.json") == 0)
    return 1;
  if (strlen(f) < 9 || f[0] != 'v' || f[7] != '/')
    return 0;
  for (int i = 1; i < 7; i++)
    if (f[i] < '0' || f[i] > '9')
      return 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(f + 8, names[i]) == 0)
      return 1;
  return 0;
}

static qv_status import_chunk(import_call *u, const Quiver__V1__ImportIndexRequest *r,
                              qv_error *err) {
  const char *f = r->file ? r->file : "";
  if (f[0] == '\0') {
    if (r->data.len > 0)
      return qv_error_set(err, QV_EINVAL, "an import chunk carries data but names no file");
    return QV_OK;
  }
  if (u->server_path[0] != '\0')
    return qv_error_set(err, QV_EINVAL,
                        "an import from a server_path carries no files (send one or the other)");
  if (!import_file_ok(f))
    return qv_error_set(err, QV_EINVAL,
                        "import file '%.80s' is not part of a collection directory "
                        "(MANIFEST.json or vNNNNNN/{index.faiss,vectors.npy,ids.npy,"
                        "features.npy,MANIFEST.json})",
                        f);
  uint32_t crc = (uint32_t)crc32(0L, r->data.data, (uInt)r->data.len);
  if (crc != r->crc32)
    return qv_error_set(err, QV_ECORRUPT,
                        "import file '%s' at offset %llu: chunk CRC-32 %08x, expected %08x "
                        "(damaged in transit: push again)",
                        f, (unsigned long long)r->offset, crc, r->crc32);
  const uint64_t budget = u->s->reg->cfg.memory_budget;
  if (budget > 0 && u->bytes + r->data.len > budget) /* it could never be loaded: stop early */
    return qv_error_set(err, QV_ENOMEM,
                        "the import passes --memory-budget-mb %llu after %llu MiB received: "
                        "raise the budget or import a smaller index",
                        (unsigned long long)(budget >> 20), (unsigned long long)(u->bytes >> 20));
  struct statvfs fs;
  const uint64_t reserve = (uint64_t)u->s->cfg->import_min_free_mb << 20;
  if (reserve > 0 && statvfs(u->stage, &fs) == 0 &&
      (uint64_t)fs.f_bavail * fs.f_frsize < reserve + r->data.len)
    return qv_error_set(err, QV_ENOMEM,
                        "the import would leave less than --import-min-free-mb %llu MiB free on "
                        "the data directory's disk (%llu MiB free, %llu MiB received): free space "
                        "or import a smaller index",
                        (unsigned long long)(reserve >> 20),
                        (unsigned long long)(((uint64_t)fs.f_bavail * fs.f_frsize) >> 20),
                        (unsigned long long)(u->bytes >> 20));
  char path[1400];
  if (f[7] == '/') {
    snprintf(path, sizeof path, "%s/%.7s", u->stage, f);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
      return qv_error_set(err, QV_EIO, "import: mkdir %s: %s", path, strerror(errno));
  }
  snprintf(path, sizeof path, "%s/%s", u->stage, f);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return qv_error_set(err, QV_EIO, "import: open %s: %s", path, strerror(errno));
  struct stat sb;
  qv_status st = QV_OK;
  if (fstat(fd, &sb) != 0) {
    st = qv_error_set(err, QV_EIO, "import: stat %s: %s", path, strerror(errno));
  } else if ((uint64_t)sb.st_size != r->offset) {
    st = qv_error_set(err, QV_EINVAL,
                      "import file '%s': chunk at offset %llu, but %llu bytes were sent before "
                      "(send each file's chunks in order)",
                      f, (unsigned long long)r->offset, (unsigned long long)sb.st_size);
  } else {
    if (sb.st_size == 0)
      u->files++;
    size_t done = 0;
    while (st == QV_OK && done < r->data.len) {
      ssize_t k = write(fd, r->data.data + done, r->data.len - done);
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0)
        st = qv_error_set(err, QV_EIO, "import: write %s: %s", path,
                          k < 0 ? strerror(errno) : "short write");
      else
        done += (size_t)k;
    }
    u->bytes += done;
  }
  close(fd);
  return st;
}

/* The end of an import stream: opens the directory (the staging one, or server_path), checks
 * it, swaps it in and saves; *resp gets the answer. */
static qv_status import_apply(import_call *u, grpc_byte_buffer **resp, qv_error *errp) {
  qv__server *s = u->s;
  qv__registry *reg = s->reg;
  qv_error err = {0};
  qv_status st = QV_OK;
  qv_collection *src = NULL;
  qv__entry *e = NULL;
  int created = 0, claimed = 0;
  char dir[PATH_MAX];
  qv_build_report rep;
  memset(&rep, 0, sizeof rep);
  rep.recall = -1;
  if (u->server_path[0] != '\0') {
    char root[PATH_MAX];
    size_t rl;
    if (s->cfg->import_root[0] == '\0') {
      st = qv_error_set(&err, QV_EPRECONDITION,
                        "server-side import is off: start quiverd with --import-root DIR, or "
                        "stream the directory (quiver push)");
    } else if (realpath(s->cfg->import_root, root) == NULL) {
      st = qv_error_set(&err, QV_EPRECONDITION, "--import-root %s: %s", s->cfg->import_root,
                        strerror(errno));
    } else if (realpath(u->server_path, dir) == NULL) {
      st = qv_error_set(&err, QV_ENOTFOUND, "server_path %s: %s", u->server_path, strerror(errno));
    } else if (rl = strlen(root),
               strncmp(dir, root, rl) != 0 || (dir[rl] != '/' && dir[rl] != '\0')) {
      st = qv_error_set(&err, QV_EPRECONDITION, "server_path %s is outside --import-root %s",
                        u->server_path, s->cfg->import_root);
    }
  } else {
    snprintf(dir, sizeof dir, "%s", u->stage);
  }
  if (st == QV_OK && (st = qv_collection_open(&src, dir, &err)) != QV_OK)
    qv_error_prefix(&err, st, "the imported index");
  if (st == QV_OK) {
    qv_collection_stats ns;
    qv_collection_stats_get(src, &ns, NULL);
    if (ns.open_note[0] != '\0')
      st = qv_error_set(&err, QV_ECORRUPT, "the imported index: %.400s", ns.open_note);
  }
  if (st == QV_OK && (st = qv__registry_get(reg, u->name, &e, &err)) == QV_ENOTFOUND && u->create) {
    qv_collection_stats ns;
    qv_collection_stats_get(src, &ns, NULL);
    qv_collection_opts o;
    qv_collection_opts_init(&o);
    o.dim = ns.dim;
    o.metric = ns.metric;
    o.spec = ns.spec;
    o.default_nprobe = ns.default_nprobe;
    o.n_features = ns.n_features;
    o.device = s->default_device;
    if ((st = qv__registry_create(reg, u->name, &o, &e, &err)) == QV_OK)
      created = 1;
  }
  if (st == QV_OK && (st = qv__registry_claim_build(reg, e, &err)) == QV_OK)
    claimed = 1;
  if (st == QV_OK && reg->cfg.memory_budget > 0) {
    qv_collection_stats ns, cs;
    qv_collection_stats_get(src, &ns, NULL);
    qv_collection_stats_get(e->col, &cs, NULL);
    uint64_t need = qv__registry_memory(reg, e) + ns.vector_bytes + ns.index_bytes +
                    cs.vector_bytes + cs.index_bytes;
    if (need > reg->cfg.memory_budget)
      st = qv_error_set(&err, QV_ENOMEM,
                        "import needs about %llu MiB with the index it replaces and the other "
                        "collections, over --memory-budget-mb %llu",
                        (unsigned long long)(need >> 20),
                        (unsigned long long)(reg->cfg.memory_budget >> 20));
  }
  if (st == QV_OK && atomic_load(&s->stopping)) /* a stop waits for imports: do not start one */
    st = qv_error_set(&err, QV_EUNAVAILABLE, "the server is shutting down: import after restart");
  if (st == QV_OK) {
    blas_build(+1); /* the recall check's exact search may use every core, like a build */
    st = qv_collection_replace(e->col, src, &u->opts, &rep, &err);
    blas_build(-1);
  }
  if (st == QV_OK && (st = qv__entry_save(e, &err)) != QV_OK) {
    /* Not durable: put the previous state back rather than serve what a restart would lose. */
    qv_error re = {0};
    qv_build_opts quick;
    qv_build_opts_init(&quick);
    quick.eval_queries = 1;
    if (created || qv_collection_replace(e->col, src, &quick, NULL, &re) == QV_OK)
      qv_error_prefix(&err, st, "import not applied (the snapshot could not be saved)");
    else
      qv_error_prefix(&err, st,
                      "imported and serving, but NOT saved: a restart serves the previous "
                      "state (%.60s)",
                      re.msg);
  }
  if (st != QV_OK && created && claimed) /* while claimed: nobody re-created the name meanwhile */
    qv__registry_drop_claimed(reg, e);
  if (claimed)
    atomic_store(&e->building, 0);
  qv_collection_close(src); /* the old state after a swap */
  if (st == QV_OK) {
    Quiver__V1__ImportIndexResponse out = QUIVER__V1__IMPORT_INDEX_RESPONSE__INIT;
    Quiver__V1__CollectionInfo info;
    char spec[INFO_BUF];
    fill_info(e, &info, spec);
    out.info = &info;
    out.bytes_received = u->bytes;
    out.files = u->files;
    out.recall = rep.recall;
    out.recall_k = rep.recall_k;
    out.recall_nprobe = rep.recall_nprobe;
    out.elapsed_seconds = now_s() - u->t0;
    *resp = pack_msg(&out.base);
    QV_LOG_I("ImportIndex collection=%s %s: %llu vectors, %s, recall@%u=%.4f at nprobe %u, "
             "%.2f s",
             u->name, u->server_path[0] ? u->server_path : "streamed",
             (unsigned long long)info.count, info.index_spec, rep.recall_k, rep.recall,
             rep.recall_nprobe, out.elapsed_seconds);
  }
  qv__registry_put(reg, e);
  *errp = err;
  return st;
}

static void *import_thread(void *arg) {
  import_call *u = arg;
  qv__server *s = u->s;
  omp_set_num_threads(omp_get_num_procs());
  qv_error err = {0};
  grpc_byte_buffer *resp = NULL;
  const qv_status st = import_apply(u, &resp, &err);
  import_end(u, st, err.msg, resp);
  long_work_end(s);
  return NULL;
}

/* One import message: the first names the collection and the options (and makes the staging
 * directory), every one may carry a chunk of a file. */
static qv_status import_message(import_call *u, const Quiver__V1__ImportIndexRequest *r,
                                qv_error *errp) {
  qv_error err = {0};
  qv_status st = QV_OK;
  if (!u->have_header) {
    const char *name = r->collection ? r->collection : "";
    const char *sp = r->server_path ? r->server_path : "";
    if (name[0] == '\0')
      st = qv_error_set(&err, QV_EINVAL, "the first import message must name the collection");
    else if ((st = qv__name_check(name, &err)) == QV_OK && strlen(sp) >= sizeof u->server_path)
      st = qv_error_set(&err, QV_EINVAL, "server_path is too long");
    if (st == QV_OK) {
      snprintf(u->name, sizeof u->name, "%s", name);
      snprintf(u->server_path, sizeof u->server_path, "%s", sp);
      u->create = r->create;
      st = build_opts_from(u->s, &u->opts, r->recall_floor, r->target_recall, r->eval_queries,
                           r->eval_k, &err);
    }
    if (st == QV_OK && u->server_path[0] == '\0') {
      snprintf(u->stage, sizeof u->stage, "%s/.import-%s-XXXXXX", u->s->reg->root, u->name);
      if (mkdtemp(u->stage) == NULL) {
        st = qv_error_set(&err, QV_EIO, "import: cannot make a staging directory in %s: %s",
                          u->s->reg->root, strerror(errno));
        u->stage[0] = '\0';
      }
    }
    u->have_header = st == QV_OK;
  } else if (r->collection && r->collection[0] && strcmp(r->collection, u->name) != 0) {
    st = qv_error_set(&err, QV_EINVAL, "one import stream goes to one collection ('%s')", u->name);
  }
  if (st == QV_OK)
    st = import_chunk(u, r, &err);
  *errp = err;
  return st;
}

static void on_import_recv(void *self, int ok) {
  import_call *u = self;
  qv_error err = {0};
  if (!ok) {
    import_end(u, QV_ECANCELLED, "import stream broken before its end", NULL);
    return;
  }
  if (u->recv == NULL) { /* end of stream: verify and swap on a thread of its own */
    if (!u->have_header) {
      import_end(u, QV_EINVAL, "empty import stream: the first message names the collection", NULL);
      return;
    }
    qv_status st = long_work_begin(u->s, "import", &err);
    if (st != QV_OK) {
      import_end(u, st, err.msg, NULL);
      return;
    }
    if (!spawn_detached(import_thread, u)) {
      qv__server *s = u->s; /* import_end frees u */
      import_end(u, QV_ENOMEM, "cannot start an import thread", NULL);
      long_work_end(s);
    }
    return;
  }
  Quiver__V1__ImportIndexRequest *r = (Quiver__V1__ImportIndexRequest *)decode(
      u->recv, &quiver__v1__import_index_request__descriptor, &err);
  grpc_byte_buffer_destroy(u->recv);
  u->recv = NULL;
  qv_status st = r ? QV_OK : QV_EINVAL;
  if (st == QV_OK)
    st = import_message(u, r, &err);
  if (r)
    protobuf_c_message_free_unpacked(&r->base, NULL);
  if (st != QV_OK)
    import_end(u, st, err.msg, NULL);
  else
    import_post_recv(u);
}

static void start_import(qv__server *s, grpc_call *call, grpc_metadata_array *md) {
  import_call *u = calloc(1, sizeof *u);
  if (u == NULL) {
    finish_call(call, md, 0, NULL, QV_ENOMEM, "out of memory");
    return;
  }
  u->tag.fn = on_import_recv;
  u->tag.on_writer = 1; /* its chunks are file writes */
  u->s = s;
  u->call = call;
  u->md = *md;
  u->t0 = now_s();
  import_post_recv(u);
}

/* ---- build stream ----------------------------------------------------------------------- */

typedef struct build_call {
  qv__tag send_tag, close_tag;
  qv__server *s;
  grpc_call *call;
  grpc_metadata_array md;
  qv__entry *e;
  pthread_mutex_t mu;
  atomic_int refs;
  atomic_int cancel;
  int close_cancelled; /* written by RECV_CLOSE_ON_SERVER */
  int send_inflight, have_pending, finished, final_sent, broken;
  char phase[16];
  uint64_t done, total;
  double t0;
  qv_status result;
  qv_error err;
  grpc_byte_buffer *send_buf;
  grpc_slice details;
  qv_build_opts opts;
  qv_build_report rep;
} build_call;

static void build_release(build_call *b) {
  if (atomic_fetch_sub(&b->refs, 1) != 1)
    return;
  if (b->send_buf)
    grpc_byte_buffer_destroy(b->send_buf);
  grpc_slice_unref(b->details);
  grpc_metadata_array_destroy(&b->md);
  grpc_call_unref(b->call);
  qv__registry_put(b->s->reg, b->e);
  pthread_mutex_destroy(&b->mu);
  free(b);
  atomic_fetch_sub(&g_calls, 1);
}

/* With b->mu held: start the next send if none is in flight. */
static void build_maybe_send(build_call *b) {
  if (b->send_inflight || b->broken || b->final_sent)
    return;
  Quiver__V1__BuildIndexProgress p = QUIVER__V1__BUILD_INDEX_PROGRESS__INIT;
  Quiver__V1__CollectionInfo info;
  char spec[INFO_BUF];
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (b->finished) {
    if (b->result == QV_OK) {
      p.phase = "done";
      p.done = p.total = 1;
      p.finished = 1;
      p.elapsed_seconds = now_s() - b->t0;
      fill_info(b->e, &info, spec);
      p.info = &info;
      p.recall = b->rep.recall;
      p.recall_k = b->rep.recall_k;
      p.recall_nprobe = b->rep.recall_nprobe;
      p.tuned_nprobe = b->rep.tuned_nprobe;
      p.caught_up = b->rep.caught_up;
      b->send_buf = pack_msg(&p.base);
      ops[n].op = GRPC_OP_SEND_MESSAGE;
      ops[n++].data.send_message.send_message = b->send_buf;
    }
    grpc_slice_unref(b->details);
    b->details = grpc_slice_from_copied_string(b->result == QV_OK ? "" : b->err.msg);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = qv__to_grpc(b->result);
    ops[n++].data.send_status_from_server.status_details = &b->details;
    b->final_sent = 1;
  } else if (b->have_pending) {
    p.phase = b->phase;
    p.done = b->done;
    p.total = b->total;
    p.elapsed_seconds = now_s() - b->t0;
    b->send_buf = pack_msg(&p.base);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = b->send_buf;
    b->have_pending = 0;
  } else {
    return;
  }
  b->send_inflight = 1;
  atomic_fetch_add(&b->refs, 1);
  if (grpc_call_start_batch(b->call, ops, n, &b->send_tag, NULL) != GRPC_CALL_OK) {
    b->send_inflight = 0;
    b->broken = 1;
    atomic_fetch_sub(&b->refs, 1);
  }
}

static void on_build_send(void *self, int ok) {
  build_call *b = (build_call *)((char *)self - offsetof(build_call, send_tag));
  pthread_mutex_lock(&b->mu);
  b->send_inflight = 0;
  if (b->send_buf) {
    grpc_byte_buffer_destroy(b->send_buf);
    b->send_buf = NULL;
  }
  if (!ok) {
    b->broken = 1;
    atomic_store(&b->cancel, 1);
  } else {
    build_maybe_send(b);
  }
  pthread_mutex_unlock(&b->mu);
  build_release(b);
}

static void on_build_close(void *self, int ok) {
  (void)ok;
  build_call *b = (build_call *)((char *)self - offsetof(build_call, close_tag));
  if (b->close_cancelled)
    atomic_store(&b->cancel, 1); /* the client went away: stop the build */
  build_release(b);
}

static int build_progress(void *user, const char *phase, uint64_t done, uint64_t total) {
  build_call *b = user;
  pthread_mutex_lock(&b->mu);
  snprintf(b->phase, sizeof b->phase, "%s", phase);
  b->done = done;
  b->total = total;
  b->have_pending = 1;
  build_maybe_send(b);
  pthread_mutex_unlock(&b->mu);
  return atomic_load(&b->cancel) || atomic_load(&b->s->stopping);
}

/* Runs a claimed build of e and saves it; clears the claim. progress may be NULL. */
static qv_status build_run(qv__server *s, qv__entry *e, qv_build_opts *opts,
                           qv_progress_fn progress, void *user, qv_build_report *rep,
                           qv_error *err) {
  blas_build(+1);
  QV_LOG_I("BuildIndex collection=%s started", e->name);
  if (s->reg->cfg.memory_budget > 0) { /* what the other collections leave */
    uint64_t others = qv__registry_memory(s->reg, e);
    opts->memory_budget =
        others < s->reg->cfg.memory_budget ? s->reg->cfg.memory_budget - others : 1;
  }
  qv_status st = qv_collection_build_ex(e->col, opts, progress, user, rep, err);
  blas_build(-1);
  if (st == QV_OK) {
    if (progress)
      progress(user, "save", 0, 1);
    st = qv__entry_save(e, err);
  }
  atomic_store(&e->building, 0);
  if (st == QV_ECANCELLED && atomic_load(&s->stopping))
    st = qv_error_set(err, QV_EUNAVAILABLE,
                      "the server is shutting down: the build was stopped, run it again after "
                      "the restart");
  return st;
}

static void *build_thread(void *arg) {
  build_call *b = arg;
  qv__server *s = b->s;
  omp_set_num_threads(omp_get_num_procs()); /* a build may use every core */
  qv_error err = {0};
  qv_status st = build_run(s, b->e, &b->opts, build_progress, b, &b->rep, &err);
  if (st == QV_OK) {
    qv_collection_stats cs;
    qv_collection_stats_get(b->e->col, &cs, NULL);
    QV_LOG_I("BuildIndex collection=%s done in %.2f s, recall@%u=%.4f at nprobe %u%s, %llu "
             "write(s) caught up, serving from %s",
             b->e->name, now_s() - b->t0, b->rep.recall_k, b->rep.recall, b->rep.recall_nprobe,
             b->rep.tuned_nprobe ? " (tuned)" : "", (unsigned long long)b->rep.caught_up,
             cs.placement);
    if (cs.device == QV_DEVICE_GPU && cs.gpu < 0)
      QV_LOG_W("collection '%s' asked for a GPU but serves from the CPU: %s", b->e->name,
               cs.placement);
  } else
    log_failure("BuildIndex", b->e->name, st, err.msg);
  metrics_call(M_BUILD, st, b->t0);
  qv__metrics_build("build", build_outcome(st), now_s() - b->t0);
  pthread_mutex_lock(&b->mu);
  b->finished = 1;
  b->result = st;
  b->err = err;
  build_maybe_send(b);
  pthread_mutex_unlock(&b->mu);
  build_release(b);
  long_work_end(s);
  return NULL;
}

/* A BuildIndex request's collection (a reference in *e) and options, and the collection claimed
 * for the build (*claimed = 1). */
static qv_status build_prepare(qv__server *s, const Quiver__V1__BuildIndexRequest *r, qv__entry **e,
                               qv_build_opts *bo, int *claimed, qv_error *err) {
  qv_build_opts_init(bo);
  *claimed = 0;
  qv_status st = qv__registry_get(s->reg, r->collection, e, err);
  if (st == QV_OK)
    st = build_opts_from(s, bo, r->recall_floor, r->target_recall, r->eval_queries, r->eval_k, err);
  if (st == QV_OK && (st = qv__registry_claim_build(s->reg, *e, err)) == QV_OK)
    *claimed = 1;
  return st;
}

static void start_build(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                        grpc_byte_buffer *payload) {
  qv_error err = {0};
  Quiver__V1__BuildIndexRequest *r = (Quiver__V1__BuildIndexRequest *)decode(
      payload, &quiver__v1__build_index_request__descriptor, &err);
  qv__entry *e = NULL;
  qv_build_opts bo;
  int claimed = 0;
  qv_status st = r ? build_prepare(s, r, &e, &bo, &claimed, &err) : QV_EINVAL;
  if (r)
    protobuf_c_message_free_unpacked(&r->base, NULL);
  build_call *b = st == QV_OK ? calloc(1, sizeof *b) : NULL;
  if (st == QV_OK && b == NULL)
    st = qv_error_set(&err, QV_ENOMEM, "out of memory");
  if (st == QV_OK) {
    if ((st = long_work_begin(s, "build", &err)) != QV_OK)
      free(b);
  }
  if (st != QV_OK) {
    if (claimed)
      atomic_store(&e->building, 0);
    log_failure("BuildIndex", e ? e->name : NULL, st, err.msg);
    if (e)
      qv__registry_put(s->reg, e);
    metrics_call(M_BUILD, st, now_s());
    qv__metrics_build("build", build_outcome(st), 0);
    finish_call(call, md, 0, NULL, st, err.msg);
    return;
  }
  b->send_tag.fn = on_build_send;
  b->close_tag.fn = on_build_close;
  b->s = s;
  b->call = call;
  b->md = *md;
  b->e = e;
  b->t0 = now_s();
  b->opts = bo;
  b->details = grpc_empty_slice();
  pthread_mutex_init(&b->mu, NULL);
  atomic_init(&b->refs, 2); /* the build thread + the close op */
  atomic_init(&b->cancel, 0);
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[1].data.recv_close_on_server.cancelled = &b->close_cancelled;
  if (grpc_call_start_batch(call, ops, 2, &b->close_tag, NULL) != GRPC_CALL_OK)
    atomic_fetch_sub(&b->refs, 1);
  if (!spawn_detached(build_thread, b)) {
    atomic_store(&e->building, 0);
    pthread_mutex_lock(&b->mu);
    b->finished = 1;
    b->result = qv_error_set(&b->err, QV_ENOMEM, "cannot start a build thread");
    build_maybe_send(b);
    pthread_mutex_unlock(&b->mu);
    build_release(b);
    long_work_end(s);
  }
}

/* ---- dispatch --------------------------------------------------------------------------- */

typedef struct pending {
  qv__tag tag;
  qv__server *s;
  int method; /* -1 = generic (unknown methods) */
  grpc_completion_queue *cq;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  grpc_call_details details; /* generic only */
} pending;

static void on_request(void *self, int ok);

static void post(pending *p) {
  p->call = NULL;
  p->payload = NULL;
  grpc_metadata_array_init(&p->md);
  grpc_call_error rc;
  if (p->method < 0) {
    grpc_call_details_init(&p->details);
    rc = grpc_server_request_call(p->s->server, &p->call, &p->details, &p->md, p->cq, p->cq,
                                  &p->tag);
  } else {
    const method *m = &kMethods[p->method];
    rc = grpc_server_request_registered_call(
        p->s->server, p->s->handles[p->method], &p->call, &p->deadline, &p->md,
        m->kind == K_CLIENT_STREAM ? NULL : &p->payload, p->cq, p->cq, &p->tag);
  }
  if (rc != GRPC_CALL_OK) {
    grpc_metadata_array_destroy(&p->md);
    if (p->method < 0)
      grpc_call_details_destroy(&p->details);
    free(p);
  }
}

static void handle_unary(qv__server *s, const method *m, grpc_call *call, grpc_metadata_array *md,
                         gpr_timespec deadline, grpc_byte_buffer *payload) {
  const double t0 = now_s();
  qv_error err = {0};
  grpc_byte_buffer *resp = NULL;
  qv_status st;
  ProtobufCMessage *req = decode(payload, m->req_desc, &err);
  const char *collection = NULL;
  if (req == NULL) {
    st = QV_EINVAL;
  } else if (deadline_passed(deadline)) {
    st = qv_error_set(&err, QV_EDEADLINE, "the deadline passed before the call was started");
  } else if (m == &kMethods[M_SEARCH] && search_batched(s, call, md, deadline, req, t0)) {
    return; /* answered by the batcher (or refused there) */
  } else {
    st = m->fn(s, req, &deadline, &resp, &err);
  }
  if (st != QV_OK) {
    if (req != NULL && req->descriptor == &quiver__v1__search_request__descriptor)
      collection = ((Quiver__V1__SearchRequest *)req)->collection;
    log_failure(method_short(m), collection, st, err.msg);
  }
  metrics_call((int)(m - kMethods), st, t0); /* counted before the answer: a client that sees
                                                the answer sees the count */
  finish_call(call, md, 0, resp, st, err.msg);
  if (st == QV_OK && m == &kMethods[M_SEARCH])
    slow_query(s, (const Quiver__V1__SearchRequest *)req, t0, 0);
  if (req)
    protobuf_c_message_free_unpacked(req, NULL);
}

/* A unary call that writes (Delete), handed to a writer thread. */
typedef struct unary_job {
  qv__tag tag;
  qv__server *s;
  const method *m;
  grpc_call *call;
  grpc_metadata_array md;
  gpr_timespec deadline;
  grpc_byte_buffer *payload;
} unary_job;

static void on_unary_job(void *self, int ok) {
  (void)ok;
  unary_job *j = self;
  handle_unary(j->s, j->m, j->call, &j->md, j->deadline, j->payload);
  if (j->payload)
    grpc_byte_buffer_destroy(j->payload);
  free(j);
}

/* Whether the call went to a writer thread (which then owns call, md and payload). */
static int unary_to_writer(qv__server *s, const method *m, grpc_call *call, grpc_metadata_array *md,
                           gpr_timespec deadline, grpc_byte_buffer *payload) {
  unary_job *j = m == &kMethods[M_DELETE] ? calloc(1, sizeof *j) : NULL;
  if (j == NULL)
    return 0; /* not a write, or no memory to hand it over: answered here */
  j->tag.fn = on_unary_job;
  j->s = s;
  j->m = m;
  j->call = call;
  j->md = *md;
  j->deadline = deadline;
  j->payload = payload;
  writers_push(s, &j->tag, 1);
  return 1;
}

static void on_request(void *self, int ok) {
  pending *p = self;
  qv__server *s = p->s;
  if (!ok) { /* the server is shutting down */
    grpc_metadata_array_destroy(&p->md);
    if (p->method < 0)
      grpc_call_details_destroy(&p->details);
    free(p);
    return;
  }
  atomic_fetch_add(&g_calls, 1); /* finished by finish_call or, for a build, build_release */
  grpc_call *call = p->call;
  grpc_metadata_array md = p->md;
  grpc_byte_buffer *payload = p->payload;
  gpr_timespec deadline = p->deadline;
  int mi = p->method;
  if (mi < 0) {
    char *path = grpc_slice_to_c_string(p->details.method);
    char msg[300];
    snprintf(msg, sizeof msg, "unknown method %.200s", path);
    QV_LOG_I("%s", msg);
    gpr_free(path);
    grpc_call_details_destroy(&p->details);
    metrics_call(NMETHODS, QV_EUNSUPPORTED, now_s());
    finish_call(call, &md, 0, NULL, QV_EUNSUPPORTED, msg);
  }
  /* Re-post first, so the server keeps accepting while we work. */
  post(p);
  if (mi < 0)
    return;
  const method *m = &kMethods[mi];
  if (s->auth != NULL && mi != M_HEALTH) { /* health stays open for probes */
    const qv__role need =
        mi == M_SEARCH || mi == M_DESCRIBE || mi == M_LIST ? QV__ROLE_READ : QV__ROLE_ADMIN;
    const qv__role have = qv__auth_role(s->auth, &md);
    const char *why = NULL;
    qv_status st = QV_OK;
    if (have == QV__ROLE_NONE) {
      st = QV_EUNAUTHENTICATED;
      why = "a missing or unknown bearer token: send 'authorization: Bearer TOKEN' (quiver "
            "--token or $QUIVER_TOKEN) with a token from quiverd's --auth-tokens file";
    } else if (have < need) {
      st = QV_EPERMISSION;
      why = "a read token may only search, describe, list and check health: this call needs an "
            "admin token";
    }
    if (st != QV_OK) {
      char msg[300];
      snprintf(msg, sizeof msg, "%s refused: %s", method_short(m), why);
      log_failure(method_short(m), NULL, st, msg);
      metrics_call(mi, st, now_s());
      finish_call(call, &md, 0, NULL, st, msg);
      if (payload)
        grpc_byte_buffer_destroy(payload);
      return;
    }
  }
  switch (m->kind) {
  case K_UNARY:
    if (unary_to_writer(s, m, call, &md, deadline, payload))
      return;
    handle_unary(s, m, call, &md, deadline, payload);
    break;
  case K_CLIENT_STREAM:
    if (mi == M_IMPORT)
      start_import(s, call, &md);
    else
      start_upsert(s, call, &md);
    break;
  case K_SERVER_STREAM:
    start_build(s, call, &md, payload);
    break;
  }
  if (payload)
    grpc_byte_buffer_destroy(payload);
}

typedef struct poller_arg {
  qv__server *s;
  grpc_completion_queue *cq;
} poller_arg;

static void *poller(void *arg) {
  poller_arg *pa = arg;
  grpc_completion_queue *cq = pa->cq;
  omp_set_num_threads((int)pa->s->cfg->omp_threads);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    if (ev.type != GRPC_OP_COMPLETE)
      continue;
    qv__tag *t = ev.tag;
    if (t->on_writer)
      writers_push(pa->s, t, ev.success);
    else
      t->fn(t, ev.success);
  }
  return NULL;
}

/* ---- metrics collected at scrape time ---------------------------------------------------- */

static void collect(void *user, qv__mbuf *o) {
  qv__server *s = user;
  qv__entry **es = NULL;
  size_t n = 0;
  if (qv__registry_list(s->reg, &es, &n, NULL) != QV_OK)
    return;
  static const struct {
    const char *name, *type, *help;
  } kG[] = {
      {"quiver_collection_vectors", "gauge", "Stored vectors."},
      {"quiver_collection_vector_bytes", "gauge", "Bytes of the full-precision store and ids."},
      {"quiver_collection_index_bytes", "gauge", "Bytes of the index (estimate), by device."},
      {"quiver_collection_tombstones", "gauge", "Stale index entries hidden until a save/build."},
      {"quiver_collection_build_recall", "gauge", "The last build's recall@k on its sample."},
      {"quiver_wal_bytes", "gauge", "Write-ahead log since the last snapshot."},
      {"quiver_wal_records", "gauge", "Records in the write-ahead log."},
      {"quiver_batch_expired_total", "counter", "Searches whose deadline passed in the queue."},
  };
  qv_collection_stats *st = calloc(n ? n : 1, sizeof *st);
  qv__batcher_stats *bs = calloc(n ? n : 1, sizeof *bs);
  if (st == NULL || bs == NULL)
    o->failed = 1;
  for (size_t i = 0; st && bs && i < n; i++) {
    qv_collection_stats_get(es[i]->col, &st[i], NULL);
    qv__batcher_stats_get(es[i]->batcher, &bs[i]);
  }
  for (size_t g = 0; st && bs && g < sizeof kG / sizeof kG[0]; g++) {
    qv__mbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", kG[g].name, kG[g].help, kG[g].name,
                    kG[g].type);
    for (size_t i = 0; i < n; i++) {
      const qv_collection_stats *c = &st[i];
      const char *name = es[i]->name;
      switch (g) {
      case 0:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->count);
        break;
      case 1:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->vector_bytes);
        break;
      case 2:
        qv__mbuf_printf(o, "%s{collection=\"%s\",device=\"cpu\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->index_bytes);
        if (c->gpu >= 0)
          qv__mbuf_printf(o, "%s{collection=\"%s\",device=\"gpu%d\"} %llu\n", kG[g].name, name,
                          c->gpu, (unsigned long long)c->device_bytes);
        break;
      case 3:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->tombstones);
        break;
      case 4:
        if (c->build_recall >= 0)
          qv__mbuf_printf(o, "%s{collection=\"%s\",k=\"%u\"} %.4f\n", kG[g].name, name,
                          c->build_recall_k, c->build_recall);
        break;
      case 5:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->wal_bytes);
        break;
      case 6:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)c->wal_records);
        break;
      case 7:
        qv__mbuf_printf(o, "%s{collection=\"%s\"} %llu\n", kG[g].name, name,
                        (unsigned long long)bs[i].expired);
        break;
      }
    }
  }
  /* Batch sizes: queries per coalesced index search. */
  qv__mbuf_printf(o, "# HELP quiver_batch_queries Queries per index search of the batcher.\n"
                     "# TYPE quiver_batch_queries histogram\n");
  for (size_t i = 0; st && bs && i < n; i++) {
    uint64_t cum = 0;
    for (int b = 0; b < 12; b++) {
      cum += bs[i].size_hist[b];
      if (b < 11)
        qv__mbuf_printf(o, "quiver_batch_queries_bucket{collection=\"%s\",le=\"%d\"} %llu\n",
                        es[i]->name, 1 << b, (unsigned long long)cum);
    }
    qv__mbuf_printf(o,
                    "quiver_batch_queries_bucket{collection=\"%s\",le=\"+Inf\"} %llu\n"
                    "quiver_batch_queries_sum{collection=\"%s\"} %llu\n"
                    "quiver_batch_queries_count{collection=\"%s\"} %llu\n",
                    es[i]->name, (unsigned long long)cum, es[i]->name,
                    (unsigned long long)bs[i].queries, es[i]->name,
                    (unsigned long long)bs[i].batches);
  }
  for (size_t i = 0; i < n; i++)
    qv__registry_put(s->reg, es[i]);
  free(es);
  free(st);
  free(bs);
  qv__mbuf_printf(o, "# HELP quiver_gpu_memory_bytes GPU memory: the device's, the budget for "
                     "collections, and what their copies reserve.\n"
                     "# TYPE quiver_gpu_memory_bytes gauge\n");
  for (int g = 0; g < qv_gpu_devices(); g++) {
    qv_gpu_info gi;
    if (qv_gpu_info_get(g, &gi, NULL) == QV_OK)
      qv__mbuf_printf(o,
                      "quiver_gpu_memory_bytes{gpu=\"%d\",kind=\"total\"} %zu\n"
                      "quiver_gpu_memory_bytes{gpu=\"%d\",kind=\"budget\"} %zu\n"
                      "quiver_gpu_memory_bytes{gpu=\"%d\",kind=\"used\"} %zu\n",
                      g, gi.total_bytes, g, gi.budget_bytes, g, gi.used_bytes);
  }
  qv__mbuf_printf(o,
                  "# HELP quiver_collections Collections served.\n"
                  "# TYPE quiver_collections gauge\nquiver_collections %zu\n",
                  n);
}

/* Plaintext, or TLS from --tls-cert/--tls-key (and --tls-client-ca: mutual TLS). */
static grpc_server_credentials *server_creds(const qv__config *cfg, qv_error *err) {
  if (cfg->tls_cert[0] == '\0' && cfg->tls_key[0] == '\0') {
    if (cfg->tls_client_ca[0] != '\0') {
      qv_error_set(err, QV_EINVAL, "--tls-client-ca needs --tls-cert and --tls-key");
      return NULL;
    }
    return grpc_insecure_server_credentials_create();
  }
  if (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0') {
    qv_error_set(err, QV_EINVAL, "TLS needs both --tls-cert and --tls-key");
    return NULL;
  }
  char *cert = NULL, *key = NULL, *ca = NULL;
  size_t len;
  grpc_server_credentials *cr = NULL;
  const char *bad = NULL;
  if (qv_file_read_all(cfg->tls_cert, 1 << 20, &cert, &len, NULL) != QV_OK)
    bad = cfg->tls_cert;
  else if (qv_file_read_all(cfg->tls_key, 1 << 20, &key, &len, NULL) != QV_OK)
    bad = cfg->tls_key;
  else if (cfg->tls_client_ca[0] != '\0' &&
           qv_file_read_all(cfg->tls_client_ca, 1 << 20, &ca, &len, NULL) != QV_OK)
    bad = cfg->tls_client_ca;
  if (bad != NULL) {
    qv_error_set(err, QV_EINVAL, "cannot read %s (a PEM file is expected)", bad);
  } else {
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    cr = grpc_ssl_server_credentials_create_ex(
        ca, &pair, 1,
        ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
    if (cr == NULL)
      qv_error_set(err, QV_EINVAL, "gRPC refused the TLS certificate, key or CA");
  }
  if (key)
    memset(key, 0, strlen(key));
  free(cert);
  free(key);
  free(ca);
  return cr;
}

/* ---- the accept watchdog ---------------------------------------------------------------- */

/* gRPC 1.51 stops accepting for good once accept() fails with EMFILE (grpc/grpc#20418): the
 * process lives on, deaf. The watchdog connects to the listener every --accept-check-s seconds
 * and sends the HTTP/2 client preface; an accepted connection answers at once (gRPC's SETTINGS,
 * or a close from the TLS handshake), whatever the polling threads are doing. Three probes in a
 * row without an answer: health says NOT_SERVING and quiverd stops, with exit status 1, for its
 * supervisor to restart it. A probe that cannot even make a socket (the process is out of
 * descriptors itself) counts as neither. */
static int accept_probe(const qv__server *s, int timeout_ms) {
  int fd = socket(s->wd_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  int answered = 0;
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (connect(fd, (const struct sockaddr *)&s->wd_addr, s->wd_len) != 0 && errno != EINPROGRESS) {
    answered = 0; /* refused: nothing listens */
  } else if (poll(&p, 1, timeout_ms) == 1) {
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0 &&
        send(fd, preface, sizeof preface - 1, MSG_NOSIGNAL) >= 0) {
      p.events = POLLIN;
      answered = poll(&p, 1, timeout_ms) == 1; /* bytes, a close or a reset: accepted */
    }
  }
  close(fd);
  return answered;
}

static void *watchdog_main(void *arg) {
  qv__server *s = arg;
  const int every_ms = (int)s->cfg->accept_check_s * 1000;
  int misses = 0;
  pthread_mutex_lock(&s->wd_mu);
  while (!atomic_load(&s->stopping)) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += every_ms / 1000;
    pthread_cond_timedwait(&s->wd_cv, &s->wd_mu, &until);
    if (atomic_load(&s->stopping))
      break;
    pthread_mutex_unlock(&s->wd_mu);
    const int r = accept_probe(s, 5000);
    pthread_mutex_lock(&s->wd_mu);
    if (r == 1) {
      misses = 0;
    } else if (r == 0 && ++misses >= 3) {
      atomic_store(&s->accept_dead, 1);
      QV_LOG_E("quiverd stopped accepting connections (3 probes of its own listener went "
               "unanswered; gRPC stops accepting after running out of file descriptors): "
               "stopping with exit status 1 for the supervisor to restart it");
      kill(getpid(), SIGTERM);
      break;
    }
  }
  pthread_mutex_unlock(&s->wd_mu);
  return NULL;
}

/* Where the watchdog connects: the listen address, or loopback for a wildcard one. */
static int watchdog_addr(qv__server *s, int port) {
  char host[256];
  const char *l = s->cfg->listen;
  if (strncmp(l, "unix:", 5) == 0 || strncmp(l, "unix-abstract:", 14) == 0)
    return 0;
  const char *colon = strrchr(l, ':');
  size_t hl = colon ? (size_t)(colon - l) : strlen(l);
  if (hl >= sizeof host)
    return 0;
  memcpy(host, l, hl);
  host[hl] = '\0';
  if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = '\0';
  }
  if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
      strcmp(host, "localhost") == 0)
    snprintf(host, sizeof host, "127.0.0.1");
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
  if (getaddrinfo(host, ps, &hints, &ai) != 0 || ai == NULL)
    return 0;
  memcpy(&s->wd_addr, ai->ai_addr, ai->ai_addrlen);
  s->wd_len = ai->ai_addrlen;
  freeaddrinfo(ai);
  return 1;
}

static void watchdog_start(qv__server *s, int port) {
  pthread_mutex_init(&s->wd_mu, NULL);
  pthread_cond_init(&s->wd_cv, NULL);
  s->wd_init = 1;
  if (s->cfg->accept_check_s <= 0)
    return;
  if (!watchdog_addr(s, port)) {
    QV_LOG_W("the accept watchdog is off: cannot probe --listen %s", s->cfg->listen);
    return;
  }
  s->watchdog_started = pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0;
}

static void watchdog_stop(qv__server *s) {
  pthread_mutex_lock(&s->wd_mu);
  pthread_cond_broadcast(&s->wd_cv);
  pthread_mutex_unlock(&s->wd_mu);
  if (s->watchdog_started)
    pthread_join(s->watchdog, NULL);
  s->watchdog_started = 0;
  pthread_mutex_destroy(&s->wd_mu);
  pthread_cond_destroy(&s->wd_cv);
}

int qv__server_accept_dead(const qv__server *s) {
  return s ? atomic_load(&s->accept_dead) : 0;
}

qv_status qv__server_start(qv__server **out, qv__config *cfg, qv__registry *reg, int *port,
                           qv_error *err) {
  *out = NULL;
  grpc_server_credentials *creds = server_creds(cfg, err);
  if (creds == NULL)
    return QV_EINVAL;
  qv__auth *auth = NULL;
  if (cfg->auth_tokens[0] != '\0' && qv__auth_load(cfg->auth_tokens, &auth, err) != QV_OK) {
    grpc_server_credentials_release(creds);
    return err ? err->code : QV_EINVAL;
  }
  qv__server *s = calloc(1, sizeof *s);
  if (s == NULL) {
    grpc_server_credentials_release(creds);
    qv__auth_free(auth);
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  }
  s->auth = auth;
  s->cfg = cfg;
  if (qv_device_parse(cfg->device, &s->default_device, err) != QV_OK) {
    grpc_server_credentials_release(creds);
    qv__auth_free(s->auth);
    free(s);
    return qv_error_prefix(err, QV_EINVAL, "--device");
  }
  s->reg = reg;
  pthread_mutex_init(&s->build_mu, NULL);
  pthread_cond_init(&s->build_cv, NULL);
  pthread_mutex_init(&s->wq_mu, NULL);
  pthread_cond_init(&s->wq_cv, NULL);
  /* The polling threads, plus one that takes only health checks: a probe is answered while
   * every other thread runs a long search. */
  const int pollers = cfg->threads > 0 ? (int)cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  s->ncq = 1 + (pollers > 0 ? pollers : 1);
  grpc_arg args[4];
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = (int)(cfg->max_message_mb * 1024 * 1024);
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = GRPC_ARG_ALLOW_REUSEPORT; /* a second server on our port must fail, not share */
  args[1].value.integer = 0;
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[2].value.integer = -1;
  size_t nargs = 3;
  /* What gRPC may buffer for all connections together: it holds a request whole before its size
   * check, so without a quota a few clients sending huge messages could exhaust the host. Past
   * the quota its reclaimer cancels the stream (RESOURCE_EXHAUSTED). */
  grpc_resource_quota *quota = NULL;
  if (cfg->grpc_memory_mb > 0) {
    quota = grpc_resource_quota_create("quiverd");
    grpc_resource_quota_resize(quota, (size_t)cfg->grpc_memory_mb << 20);
    args[nargs].type = GRPC_ARG_POINTER;
    args[nargs].key = GRPC_ARG_RESOURCE_QUOTA;
    args[nargs].value.pointer.p = quota;
    args[nargs++].value.pointer.vtable = grpc_resource_quota_arg_vtable();
  }
  grpc_channel_args ca = {nargs, args};
  s->server = grpc_server_create(&ca, NULL);
  if (quota != NULL)
    grpc_resource_quota_unref(quota); /* the server holds its own reference */
  s->handles = calloc(NMETHODS, sizeof *s->handles);
  s->cqs = calloc((size_t)s->ncq, sizeof *s->cqs);
  s->threads = calloc((size_t)s->ncq, sizeof *s->threads);
  s->pargs = calloc((size_t)s->ncq, sizeof *s->pargs);
  if (s->server == NULL || !s->handles || !s->cqs || !s->threads || !s->pargs) {
    if (s->server)
      grpc_server_destroy(s->server);
    free(s->cqs);
    free(s->threads);
    free(s->pargs);
    free(s->handles);
    pthread_mutex_destroy(&s->build_mu);
    pthread_cond_destroy(&s->build_cv);
    grpc_server_credentials_release(creds);
    qv__auth_free(s->auth);
    free(s);
    return qv_error_set(err, QV_ENOMEM, "out of memory starting the gRPC server");
  }
  for (int i = 0; i < NMETHODS; i++)
    s->handles[i] = grpc_server_register_method(s->server, kMethods[i].path, NULL,
                                                kMethods[i].kind == K_CLIENT_STREAM
                                                    ? GRPC_SRM_PAYLOAD_NONE
                                                    : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
                                                0);
  for (int i = 0; i < s->ncq; i++) {
    s->cqs[i] = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cqs[i], NULL);
  }
  *port = grpc_server_add_http2_port(s->server, cfg->listen, creds);
  grpc_server_credentials_release(creds);
  if (*port == 0) {
    for (int i = 0; i < s->ncq; i++)
      grpc_completion_queue_shutdown(s->cqs[i]);
    grpc_server_destroy(s->server);
    for (int i = 0; i < s->ncq; i++)
      grpc_completion_queue_destroy(s->cqs[i]);
    free(s->cqs);
    free(s->threads);
    free(s->pargs);
    free(s->handles);
    pthread_mutex_destroy(&s->build_mu);
    pthread_cond_destroy(&s->build_cv);
    qv__auth_free(s->auth);
    free(s);
    return qv_error_set(err, QV_EUNAVAILABLE, "cannot listen on %s (address in use or invalid?)",
                        cfg->listen);
  }
  static const char *names[NMETHODS + 1];
  for (int i = 0; i < NMETHODS; i++)
    names[i] = method_short(&kMethods[i]);
  names[NMETHODS] = "unknown";
  qv__metrics_init(names, NMETHODS + 1);
  if (cfg->metrics_listen[0] != '\0') {
    int mport = 0;
    if (qv__metrics_start(cfg->metrics_listen, collect, s, &mport, err) != QV_OK) {
      grpc_server_destroy(s->server);
      for (int i = 0; i < s->ncq; i++) {
        grpc_completion_queue_shutdown(s->cqs[i]);
        grpc_completion_queue_destroy(s->cqs[i]);
      }
      free(s->cqs);
      free(s->threads);
      free(s->pargs);
      free(s->handles);
      pthread_mutex_destroy(&s->build_mu);
      pthread_cond_destroy(&s->build_cv);
      qv__auth_free(s->auth);
      free(s);
      return err ? err->code : QV_EIO;
    }
    QV_LOG_I("metrics on http://%.200s/metrics (port %d)", cfg->metrics_listen, mport);
  }
  if (s->auth != NULL)
    QV_LOG_I("auth: %zu bearer token(s) from %s; health stays open", qv__auth_count(s->auth),
             cfg->auth_tokens);
  if (cfg->tls_cert[0] != '\0')
    QV_LOG_I("TLS on %s%s", cfg->listen,
             cfg->tls_client_ca[0] ? ", client certificates required (mutual TLS)" : "");
  grpc_server_start(s->server);
  for (int w = 0; w < QV__WRITERS; w++) {
    if (pthread_create(&s->writers[w], NULL, writer_main, s) != 0) {
      qv__server_stop(s);
      return qv_error_set(err, QV_ENOMEM, "cannot start writer thread %d of %d", w + 1,
                          QV__WRITERS);
    }
    s->nwriters = w + 1;
  }
  /* A queue gets requests only once its poller runs, so a failed thread start leaves no queue
   * holding calls that nobody serves. */
  for (int q = 0; q < s->ncq; q++) {
    s->pargs[q].s = s;
    s->pargs[q].cq = s->cqs[q];
    if (pthread_create(&s->threads[q], NULL, poller, &s->pargs[q]) != 0) {
      qv__server_stop(s);
      return qv_error_set(err, QV_ENOMEM, "cannot start polling thread %d of %d", q + 1, s->ncq);
    }
    s->nthreads = q + 1;
    for (int m = -1; m < NMETHODS; m++)
      for (int k = 0; k < (m < 0 ? 2 : NPENDING); k++) {
        if ((q == s->ncq - 1) != (m == M_HEALTH)) /* the last queue: health checks only */
          continue;
        pending *p = calloc(1, sizeof *p);
        if (p == NULL)
          continue;
        p->tag.fn = on_request;
        p->s = s;
        p->method = m;
        p->cq = s->cqs[q];
        post(p);
      }
  }
  watchdog_start(s, *port);
  *out = s;
  return QV_OK;
}

void qv__server_stop(qv__server *s) {
  if (s == NULL)
    return;
  atomic_store(&s->stopping, 1); /* health says NOT_SERVING; builds see it and cancel */
  if (s->wd_init)
    watchdog_stop(s);
  qv__metrics_stop(); /* its collector reads the registry */
  grpc_completion_queue *scq = grpc_completion_queue_create_for_pluck(NULL);
  int tag;
  grpc_server_shutdown_and_notify(s->server, scq, &tag);
  /* Builds stop at their next progress point and send their final status. */
  pthread_mutex_lock(&s->build_mu);
  while (s->builds > 0) {
    QV_LOG_I("waiting for %d build(s) to stop", s->builds);
    pthread_cond_wait(&s->build_cv, &s->build_mu);
  }
  pthread_mutex_unlock(&s->build_mu);
  gpr_timespec grace = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                    gpr_time_from_millis(s->cfg->shutdown_grace_ms, GPR_TIMESPAN));
  /* gRPC's shutdown also waits for clients to close their connections. Once every call is
   * answered, idle connections are closed at once instead of after the grace period. */
  for (;;) {
    gpr_timespec step =
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(20, GPR_TIMESPAN));
    if (gpr_time_cmp(step, grace) > 0)
      step = grace;
    grpc_event ev = grpc_completion_queue_pluck(scq, &tag, step, NULL);
    if (ev.type == GRPC_OP_COMPLETE)
      break;
    const int left = atomic_load(&g_calls);
    const int late = gpr_time_cmp(gpr_now(GPR_CLOCK_REALTIME), grace) >= 0;
    if (left == 0 || late) {
      if (late && left > 0)
        QV_LOG_W("%d in-flight call(s) did not finish within %lld ms: cancelling them", left,
                 (long long)s->cfg->shutdown_grace_ms);
      grpc_server_cancel_all_calls(s->server); /* also closes idle connections */
      grpc_completion_queue_pluck(scq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
      break;
    }
  }
  /* A handler still running (a search between two of its steps) answers its cancelled call
   * when it sees the stop: its queue must still take that answer (a batch started on a queue
   * that is shut down aborts the process), so the queues go only once every call is done. */
  for (int waited_ms = 0; atomic_load(&g_calls) > 0; waited_ms += 10) {
    if (waited_ms > 0 && waited_ms % 5000 == 0)
      QV_LOG_W("waiting for %d call(s) to end their current step", atomic_load(&g_calls));
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < s->ncq; i++)
    grpc_completion_queue_shutdown(s->cqs[i]);
  for (int i = 0; i < s->ncq; i++)
    if (i < s->nthreads)
      pthread_join(s->threads[i], NULL);
    else
      poller(&s->pargs[i]); /* drain a queue whose poller never started */
  writers_stop(s);
  grpc_server_destroy(s->server);
  for (int i = 0; i < s->ncq; i++)
    grpc_completion_queue_destroy(s->cqs[i]);
  grpc_completion_queue_shutdown(scq);
  grpc_completion_queue_destroy(scq);
  pthread_mutex_destroy(&s->build_mu);
  pthread_cond_destroy(&s->build_cv);
  pthread_mutex_destroy(&s->wq_mu);
  pthread_cond_destroy(&s->wq_cv);
  free(s->cqs);
  free(s->threads);
  free(s->pargs);
  free(s->handles);
  qv__auth_free(s->auth);
  free(s);
}

/* ---- offline calls ---------------------------------------------------------------------- */

qv__server *qv__server_offline_new(qv__config *cfg, qv__registry *reg) {
  qv__server *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->cfg = cfg;
  s->reg = reg;
  pthread_mutex_init(&s->build_mu, NULL);
  pthread_cond_init(&s->build_cv, NULL);
  if (qv_device_parse(cfg->device, &s->default_device, NULL) != QV_OK)
    s->default_device = QV_DEVICE_AUTO;
  return s;
}

void qv__server_offline_free(qv__server *s) {
  if (s == NULL)
    return;
  pthread_mutex_destroy(&s->build_mu);
  pthread_cond_destroy(&s->build_cv);
  free(s);
}

int qv__server_methods(void) {
  return NMETHODS;
}

const char *qv__server_method_path(int method) {
  return method >= 0 && method < NMETHODS ? kMethods[method].path : NULL;
}

/* The answer's bytes (malloc'd; NULL with length 0 when there is none). */
static void offline_answer(grpc_byte_buffer *bb, ProtobufCBinaryData *out) {
  out->data = NULL;
  out->len = 0;
  if (bb == NULL)
    return;
  grpc_byte_buffer_reader r;
  if (grpc_byte_buffer_reader_init(&r, bb)) {
    grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    if ((out->data = malloc(GRPC_SLICE_LENGTH(sl) + 1)) != NULL) {
      memcpy(out->data, GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl));
      out->len = GRPC_SLICE_LENGTH(sl);
    }
    grpc_slice_unref(sl);
  }
  grpc_byte_buffer_destroy(bb);
}

static qv_status offline_upsert(qv__server *s, const ProtobufCBinaryData *msgs, size_t n,
                                grpc_byte_buffer **resp, qv_error *err) {
  qv__entry *e = NULL;
  uint64_t upserted = 0;
  qv_status st = QV_OK;
  for (size_t i = 0; st == QV_OK && i < n; i++) {
    ProtobufCMessage *m =
        decode_bytes(&quiver__v1__upsert_request__descriptor, msgs[i].data, msgs[i].len, err);
    st = m ? upsert_chunk(s, &e, &upserted, (Quiver__V1__UpsertRequest *)m, err) : QV_EINVAL;
    if (m)
      protobuf_c_message_free_unpacked(m, NULL);
  }
  if (st == QV_OK)
    st = upsert_done(s, e, upserted, resp, err);
  else if (e != NULL && upserted > 0)
    atomic_store(&e->dirty, 1);
  if (e)
    qv__registry_put(s->reg, e);
  return st;
}

static qv_status offline_import(qv__server *s, const ProtobufCBinaryData *msgs, size_t n,
                                grpc_byte_buffer **resp, qv_error *err) {
  import_call *u = calloc(1, sizeof *u);
  if (u == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  u->s = s;
  u->t0 = now_s();
  qv_status st = QV_OK;
  for (size_t i = 0; st == QV_OK && i < n; i++) {
    ProtobufCMessage *m =
        decode_bytes(&quiver__v1__import_index_request__descriptor, msgs[i].data, msgs[i].len, err);
    st = m ? import_message(u, (Quiver__V1__ImportIndexRequest *)m, err) : QV_EINVAL;
    if (m)
      protobuf_c_message_free_unpacked(m, NULL);
  }
  if (st == QV_OK && !u->have_header)
    st =
        qv_error_set(err, QV_EINVAL, "empty import stream: the first message names the collection");
  if (st == QV_OK)
    st = import_apply(u, resp, err);
  if (u->stage[0] != '\0')
    qv_remove_tree(u->stage, NULL);
  free(u);
  return st;
}

static qv_status offline_build(qv__server *s, const ProtobufCBinaryData *msg,
                               grpc_byte_buffer **resp, qv_error *err) {
  ProtobufCMessage *m =
      decode_bytes(&quiver__v1__build_index_request__descriptor, msg->data, msg->len, err);
  if (m == NULL)
    return QV_EINVAL;
  qv__entry *e = NULL;
  qv_build_opts bo;
  int claimed = 0;
  qv_status st = build_prepare(s, (Quiver__V1__BuildIndexRequest *)m, &e, &bo, &claimed, err);
  protobuf_c_message_free_unpacked(m, NULL);
  qv_build_report rep;
  memset(&rep, 0, sizeof rep);
  if (st == QV_OK) {
    st = build_run(s, e, &bo, NULL, NULL, &rep, err);
  } else if (claimed) {
    atomic_store(&e->building, 0);
  }
  if (st == QV_OK) {
    Quiver__V1__BuildIndexProgress p = QUIVER__V1__BUILD_INDEX_PROGRESS__INIT;
    Quiver__V1__CollectionInfo info;
    char spec[INFO_BUF];
    p.phase = "done";
    p.finished = 1;
    fill_info(e, &info, spec);
    p.info = &info;
    p.recall = rep.recall;
    *resp = pack_msg(&p.base);
  }
  if (e)
    qv__registry_put(s->reg, e);
  return st;
}

qv_status qv__server_call_offline(qv__server *s, int mi, const ProtobufCBinaryData *msgs,
                                  size_t nmsgs, ProtobufCBinaryData *resp, qv_error *err) {
  resp->data = NULL;
  resp->len = 0;
  if (mi < 0 || mi >= NMETHODS)
    return qv_error_set(err, QV_EUNSUPPORTED, "unknown method %d", mi);
  const method *m = &kMethods[mi];
  if (m->kind != K_CLIENT_STREAM && nmsgs != 1)
    return qv_error_set(err, QV_EINVAL, "%s takes one message, not %zu", m->path, nmsgs);
  grpc_byte_buffer *bb = NULL;
  qv_status st;
  if (mi == M_UPSERT) {
    st = offline_upsert(s, msgs, nmsgs, &bb, err);
  } else if (mi == M_IMPORT) {
    st = offline_import(s, msgs, nmsgs, &bb, err);
  } else if (mi == M_BUILD) {
    st = offline_build(s, &msgs[0], &bb, err);
  } else {
    ProtobufCMessage *req = decode_bytes(m->req_desc, msgs[0].data, msgs[0].len, err);
    st = req ? m->fn(s, req, NULL, &bb, err) : QV_EINVAL;
    if (req)
      protobuf_c_message_free_unpacked(req, NULL);
  }
  if (st != QV_OK && bb != NULL) {
    grpc_byte_buffer_destroy(bb);
    bb = NULL;
  }
  offline_answer(bb, resp);
  return st;
}

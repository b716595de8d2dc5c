/* A shard server's replicas: see replica.h.
 *
 * One thread does everything, in a loop: every --map-poll-ms it reads this node's assignments
 * and the collections' records from etcd (a failed read changes nothing: the replicas keep
 * serving), opens what is new, drops what is no longer assigned; then it applies what each
 * replica's log has (up to a batch per replica per turn, so one long backlog does not starve
 * the others), looks at the log's last sequence, and puts the replica's report when it changed.
 * Builds run on threads of their own; the replica keeps applying (the build's catch-up takes
 * what arrives meanwhile, as on a single node).
 *
 * How far a replica got is in DATA_DIR/fleet/<local>.state ({"uid","applied","built"}), written
 * after the records it counts are applied. A crash can leave it behind what the collection holds
 * (never ahead): the records after it are applied again at the next start, which leaves the same
 * collection, since an upsert or delete of an id gives the same result however often it is
 * applied in order. */
#define _GNU_SOURCE
#include "replica.h"

#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fleet.h"
#include "log.h"
#include "quiver/clock.h"
#include "quiver/etcd.h"
#include "quiver/fsutil.h"
#include "quiver/jslog.h"
#include "server_internal.h"

enum { APPLY_BATCH = 64 };

typedef struct held {
  char name[QV__FLEET_NAME_MAX + 1];
  uint32_t shard;
  char local[QV__NAME_MAX + 1];
  char state_path[QV_PATH_MAX];
  qv__fcoll rec;
  qv_jslog *log;
  qv_jslog_reader *rd;
  double retry_at; /* after a failed open or apply: not before this */
  uint64_t applied, saved_applied, log_seq;
  int log_known;      /* log_seq was read since the open */
  int caught_up;      /* applied the whole log once since the open: may be in-sync from then on */
  double opened_t;    /* when the log was opened */
  uint64_t opened_at; /* applied then */
  uint64_t rows_since_open; /* upserted and deleted rows applied since */
  double log_t, saved_t, report_t;
  double progress_t; /* the last record applied, or the reader opened */
  qv__rep_state state;
  uint64_t built_gen;
  char build_error[200];
  /* A build thread: runs while building; done (set by it) once it finished. */
  pthread_t bt;
  int building;
  int build_done;
  qv_status build_st;
  uint64_t build_for;
  double build_retry_at; /* a failed build is tried again from then (new data may fix it) */
  char *report;          /* the JSON last put */
  int64_t report_lease;
  int assigned; /* seen in this turn's assignments */
  /* Rollouts (docs/rollout.md): the collection's rollout record (have_ro), the staged version
   * fed from the log up to `applied` (state file: 0 = none), the one warmed, and the version
   * beside the serving one as last reported. */
  qv__froll ro;
  int have_ro;
  uint64_t fed_version, warmed_version;
  double ro_retry_at;
  uint64_t version, beside_version;
  int beside_kind;
  double beside_recall;
} held;

struct qv__replicas {
  qv__server *s;
  const qv__config *cfg;
  qv__member *m;
  qv_etcd *etcd;
  char nats[1024], node[64], addr[320];
  char fleet_dir[QV_PATH_MAX];
  held **h;
  size_t n, cap;
  int swept; /* the replicas left from before this start that are no longer assigned: dropped */
  pthread_t thr;
  pthread_mutex_t mu; /* stop, and each held's build fields */
  pthread_cond_t cv;
  int stop;
};

/* ---- the state file ---------------------------------------------------------------------- */

static void state_save(held *h) {
  char buf[256];
  int len = snprintf(buf, sizeof buf,
                     "{\"uid\":\"%016llx\",\"applied\":%llu,\"built\":%llu,\"fed\":%llu}\n",
                     (unsigned long long)h->rec.uid, (unsigned long long)h->applied,
                     (unsigned long long)h->built_gen, (unsigned long long)h->fed_version);
  qv_error e = {0};
  if (qv_file_write_atomic(h->state_path, buf, (size_t)len, &e) != QV_OK)
    QV_LOG_W("fleet: %s: saving how far it got: %s", h->local, e.msg);
  h->saved_applied = h->applied;
  h->saved_t = qv_monotonic_s();
}

/* 1 when the file is this collection's (same uid): applied and built filled. */
static int state_load(held *h) {
  json_error_t je;
  json_t *o = json_load_file(h->state_path, 0, &je);
  if (o == NULL)
    return 0;
  const char *uid = NULL;
  json_int_t applied = 0, built = 0, fed = 0;
  int ok = json_unpack(o, "{s:s, s:I, s?I, s?I}", "uid", &uid, "applied", &applied, "built", &built,
                       "fed", &fed) == 0 &&
           strtoull(uid, NULL, 16) == h->rec.uid;
  if (ok) {
    h->applied = h->saved_applied = (uint64_t)applied;
    h->built_gen = (uint64_t)built;
    h->fed_version = (uint64_t)fed;
  }
  json_decref(o);
  return ok;
}

/* ---- local calls ------------------------------------------------------------------------- */

static qv_status call_local(qv__replicas *R, int mi, const ProtobufCMessage *req, qv_error *err) {
  const size_t len = protobuf_c_message_get_packed_size(req);
  ProtobufCBinaryData msg = {len, malloc(len ? len : 1)};
  if (msg.data == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  protobuf_c_message_pack(req, msg.data);
  ProtobufCBinaryData resp;
  qv_status st = qv__server_call_offline(R->s, mi, &msg, 1, &resp, err);
  free(msg.data);
  free(resp.data);
  return st;
}

static qv_status create_local(qv__replicas *R, held *h, qv_error *err) {
  Quiver__V1__DropCollectionRequest d = QUIVER__V1__DROP_COLLECTION_REQUEST__INIT;
  d.name = h->local;
  qv_error ignored = {0};
  (void)call_local(R, M_DROP, &d.base, &ignored); /* a leftover of an older collection */
  Quiver__V1__CreateCollectionRequest c = QUIVER__V1__CREATE_COLLECTION_REQUEST__INIT;
  c.name = h->local;
  c.dim = h->rec.dim;
  c.metric = (Quiver__V1__Metric)h->rec.metric;
  c.index_spec = h->rec.spec;
  /* The record's nprobe slot holds a graph's default efSearch. */
  if (qv_spec_is_graph(h->rec.spec))
    c.default_ef_search = h->rec.default_nprobe;
  else
    c.default_nprobe = h->rec.default_nprobe;
  c.train_sample = h->rec.train_sample;
  c.n_features = h->rec.n_features;
  c.device = (Quiver__V1__Device)h->rec.device;
  c.deferred_deletes = h->rec.deferred_deletes;
  Quiver__V1__AttributeField f[QV_MAX_ATTRS], *fp[QV_MAX_ATTRS];
  qv__schema_to_pb(h->rec.n_attrs, h->rec.attrs, f, fp);
  c.n_attributes = h->rec.n_attrs;
  c.attributes = h->rec.n_attrs ? fp : NULL;
  return call_local(R, M_CREATE, &c.base, err);
}

static int local_exists(qv__replicas *R, const char *name) {
  qv__entry *e;
  qv_error ignored = {0};
  if (qv__registry_get(R->s->reg, name, &e, &ignored) != QV_OK)
    return 0;
  qv__registry_put(R->s->reg, e);
  return 1;
}

static void local_stats(qv__replicas *R, held *h, uint64_t *count, uint64_t *version,
                        int *trained) {
  *count = *version = 0;
  *trained = 0;
  qv__entry *e;
  qv_error ignored = {0};
  if (qv__registry_get(R->s->reg, h->local, &e, &ignored) != QV_OK)
    return;
  qv_collection_stats cs;
  if (qv_collection_stats_get(qv__entry_col(e), &cs, NULL) == QV_OK) {
    *count = cs.count;
    *version = cs.version;
    *trained = cs.trained;
  }
  qv__registry_put(R->s->reg, e);
}

/* ---- applying the log -------------------------------------------------------------------- */

typedef struct apply_ctx {
  qv__replicas *R;
  held *h;
  qv_status st; /* a failure that stops the apply (retried later from the same record) */
  qv_error err;
} apply_ctx;

static qv_status apply_record(qv__replicas *R, held *h, const uint8_t *rec, size_t len,
                              qv_error *err) {
  if (len < 1)
    return qv_error_set(err, QV_EINVAL, "an empty log record");
  qv_status st;
  if (rec[0] == QV__REC_UPSERT) {
    Quiver__V1__UpsertRequest *r = quiver__v1__upsert_request__unpack(NULL, len - 1, rec + 1);
    if (r == NULL)
      return qv_error_set(err, QV_EINVAL, "an upsert record that does not decode");
    char *saved = r->collection;
    r->collection = h->local;
    qv__entry *e = NULL;
    uint64_t upserted = 0;
    st = qv__upsert_chunk(R->s, &e, &upserted, r, err);
    h->rows_since_open += r->n_ids;
    grpc_byte_buffer *resp = NULL;
    if (st == QV_OK)
      st = qv__upsert_done(R->s, e, upserted, &resp, err);
    if (resp)
      grpc_byte_buffer_destroy(resp);
    if (e)
      qv__registry_put(R->s->reg, e);
    r->collection = saved;
    quiver__v1__upsert_request__free_unpacked(r, NULL);
  } else if (rec[0] == QV__REC_DELETE) {
    Quiver__V1__DeleteRequest *r = quiver__v1__delete_request__unpack(NULL, len - 1, rec + 1);
    if (r == NULL)
      return qv_error_set(err, QV_EINVAL, "a delete record that does not decode");
    char *saved = r->collection;
    r->collection = h->local;
    grpc_byte_buffer *resp = NULL;
    st = qv__h_delete(R->s, &r->base, NULL, &resp, err);
    h->rows_since_open += r->n_ids;
    if (resp)
      grpc_byte_buffer_destroy(resp);
    r->collection = saved;
    quiver__v1__delete_request__free_unpacked(r, NULL);
  } else {
    st = qv_error_set(err, QV_EINVAL, "a log record of unknown kind %d", rec[0]);
  }
  return st;
}

static int on_record(void *user, uint64_t seq, const void *rec, size_t len) {
  apply_ctx *a = user;
  held *h = a->h;
  if (seq <= h->applied)
    return 0; /* had it already (a reader re-opened from an older point) */
  qv_error err = {0};
  if (seq != h->applied + 1) {
    /* A gap: the consumer skipped records (a failover of its server). Never apply past one:
     * the reader is opened again after the last record applied. */
    a->st = qv_error_set(&a->err, QV_EUNAVAILABLE, "log record %llu arrived after %llu",
                         (unsigned long long)seq, (unsigned long long)h->applied);
    return 1;
  }
  qv_status st = apply_record(a->R, h, rec, len, &err);
  if (st == QV_EINVAL) {
    /* It can never apply (the router checks what it logs, so this is a bug or a record from
     * elsewhere): skipping it keeps the replica alive; every replica skips it alike. */
    QV_LOG_E("fleet: %s: log record %llu skipped: %s", h->local, (unsigned long long)seq, err.msg);
  } else if (st != QV_OK) {
    a->st = st;
    a->err = err;
    return 1;
  }
  h->applied = seq;
  return 0;
}

static void close_log(held *h) {
  qv_jslog_reader_close(h->rd);
  h->rd = NULL;
  qv_jslog_close(h->log);
  h->log = NULL;
  h->log_known = 0;
  h->caught_up = 0;
}

/* Marks the local collection as a fleet replica's: a version staged on it is fed from the log
 * (rollout_step), and one staged before a restart was fed when the state file says so. */
static void mark_local(qv__replicas *R, held *h) {
  qv__entry *e;
  qv_error ignored = {0};
  if (qv__registry_get(R->s->reg, h->local, &e, &ignored) != QV_OK)
    return;
  qv__entry_set_fleet(e);
  int kind = QV__SLOT_NONE;
  qv_collection *c = qv__entry_slot_get(e, 0, &kind);
  if (c != NULL) {
    const uint64_t g = qv_collection_generation(c);
    qv__entry_slot_put(e);
    if (kind == QV__SLOT_STAGED)
      qv__entry_slot_set_fed(e, g == h->fed_version);
  }
  qv__registry_put(R->s->reg, e);
}

/* Opens what a held replica needs: the local collection, its log and a reader from where it got
 * to. Retried each turn (after a pause) until it works. */
static void open_held(qv__replicas *R, held *h) {
  qv_error err = {0};
  qv_status st = QV_OK;
  if (h->log == NULL) {
    if (!state_load(h) || !local_exists(R, h->local)) {
      h->applied = h->saved_applied = 0;
      h->built_gen = 0;
      if ((st = create_local(R, h, &err)) == QV_OK) {
        state_save(h);
        QV_LOG_I("fleet: replica %s created (shard %u of %s)", h->local, h->shard, h->name);
      }
    } else {
      QV_LOG_I("fleet: replica %s opened at log record %llu", h->local,
               (unsigned long long)h->applied);
    }
    if (st == QV_OK)
      mark_local(R, h);
    char stream[64];
    qv__fleet_stream_name(h->rec.uid, h->shard, stream, sizeof stream);
    if (st == QV_OK)
      st = qv_jslog_open(&h->log, R->nats, stream, (int)h->rec.stream_replicas, 5000, &err);
    h->opened_t = qv_monotonic_s();
    h->opened_at = h->applied;
    h->rows_since_open = 0;
  }
  if (st == QV_OK && h->rd == NULL)
    st = qv_jslog_reader_open(h->log, h->applied + 1, &h->rd, &err);
  if (st != QV_OK) {
    QV_LOG_W("fleet: replica %s: %s (trying again)", h->local, err.msg);
    h->retry_at = qv_monotonic_s() + 1.0;
  }
}

/* Applies what has arrived; 1 when it applied anything. */
static int apply_some(qv__replicas *R, held *h) {
  if (h->rd == NULL)
    return 0;
  apply_ctx a = {R, h, QV_OK, {0}};
  size_t n = 0;
  qv_error err = {0};
  const uint64_t before = h->applied;
  qv_status st = qv_jslog_reader_next(h->rd, 0, APPLY_BATCH, on_record, &a, &n, &err);
  if (a.st != QV_OK || st != QV_OK) {
    QV_LOG_W("fleet: replica %s stopped at log record %llu: %s (trying again)", h->local,
             (unsigned long long)h->applied, a.st != QV_OK ? a.err.msg : err.msg);
    qv_jslog_reader_close(h->rd); /* re-opened after the record that applied last */
    h->rd = NULL;
    h->retry_at = qv_monotonic_s() + 1.0;
  }
  const double now = qv_monotonic_s();
  if (h->applied != h->saved_applied && (n < APPLY_BATCH || now - h->saved_t > 0.2))
    state_save(h);
  return h->applied != before;
}

/* ---- builds ------------------------------------------------------------------------------ */

typedef struct build_arg {
  qv__replicas *R;
  held *h;
} build_arg;

static void *build_main(void *arg) {
  build_arg *b = arg;
  held *h = b->h;
  Quiver__V1__BuildIndexRequest r = QUIVER__V1__BUILD_INDEX_REQUEST__INIT;
  r.collection = h->local;
  r.recall_floor = h->rec.build_floor;
  r.target_recall = h->rec.build_target;
  r.eval_queries = h->rec.build_eval_queries;
  r.eval_k = h->rec.build_eval_k;
  qv_error err = {0};
  qv_status st = call_local(b->R, M_BUILD, &r.base, &err);
  pthread_mutex_lock(&b->R->mu);
  h->build_st = st;
  snprintf(h->build_error, sizeof h->build_error, "%.199s", st == QV_OK ? "" : err.msg);
  h->build_done = 1;
  pthread_mutex_unlock(&b->R->mu);
  free(b);
  return NULL;
}

static void build_step(qv__replicas *R, held *h, uint64_t lag) {
  pthread_mutex_lock(&R->mu);
  const int done = h->build_done;
  pthread_mutex_unlock(&R->mu);
  if (h->building && done) {
    pthread_join(h->bt, NULL);
    h->building = h->build_done = 0;
    h->built_gen = h->build_for; /* tried: a failure is reported, and tried again later */
    state_save(h);
    if (h->build_st == QV_OK) {
      QV_LOG_I("fleet: replica %s built (build %llu)", h->local, (unsigned long long)h->built_gen);
    } else {
      QV_LOG_W("fleet: replica %s: build %llu failed: %s (trying again in 30 s)", h->local,
               (unsigned long long)h->built_gen, h->build_error);
      h->build_retry_at = qv_monotonic_s() + 30;
    }
  }
  /* A build waits until the replica has applied its whole log: it then builds from what its
   * peers built from. */
  const int retry =
      h->build_error[0] != '\0' && h->build_retry_at > 0 && qv_monotonic_s() >= h->build_retry_at;
  if (h->building || (h->rec.build_gen <= h->built_gen && !retry) || lag > 0 || !h->log_known)
    return;
  build_arg *b = malloc(sizeof *b);
  if (b == NULL)
    return;
  *b = (build_arg){R, h};
  h->build_for = h->rec.build_gen;
  h->build_retry_at = 0;
  h->building = 1;
  if (pthread_create(&h->bt, NULL, build_main, b) != 0) {
    h->building = 0;
    free(b);
  }
}

/* ---- rollouts (docs/rollout.md) --------------------------------------------------------- */

typedef struct feed_ctx {
  qv__entry *e;
  uint64_t next, last; /* the record expected next; the last one to apply */
  uint64_t records;
  qv_status st;
  qv_error err;
} feed_ctx;

/* One log record onto the staged version alone (what the serving version applied already). */
static int on_feed(void *user, uint64_t seq, const void *rec, size_t len) {
  feed_ctx *f = user;
  if (seq < f->next)
    return 0;
  if (seq != f->next) {
    f->st = qv_error_set(&f->err, QV_EUNAVAILABLE, "log record %llu arrived, %llu expected",
                         (unsigned long long)seq, (unsigned long long)f->next);
    return 1;
  }
  const uint8_t *b = rec;
  qv_collection *c = qv__entry_slot_get(f->e, 0, NULL);
  if (c == NULL) {
    f->st = qv_error_set(&f->err, QV_EPRECONDITION, "the staged version went away");
    return 1;
  }
  qv_status st = QV_OK;
  qv_error err = {0};
  if (len >= 1 && b[0] == QV__REC_UPSERT) {
    Quiver__V1__UpsertRequest *r = quiver__v1__upsert_request__unpack(NULL, len - 1, b + 1);
    if (r != NULL) {
      qv_collection_stats cs;
      qv_collection_stats_get(c, &cs, NULL);
      qv__attrs_in a;
      st = qv__attrs_from_pb(cs.n_attrs, cs.attrs, qv__entry_name(f->e), r->n_ids, r->n_attributes,
                             r->attributes, &a, &err);
      if (st == QV_OK)
        st = qv_collection_upsert(c, r->n_ids, r->ids, r->vectors,
                                  r->n_features ? r->features : NULL, r->n_attributes ? &a.b : NULL,
                                  &err);
      qv__attrs_in_free(&a);
      quiver__v1__upsert_request__free_unpacked(r, NULL);
    }
  } else if (len >= 1 && b[0] == QV__REC_DELETE) {
    Quiver__V1__DeleteRequest *r = quiver__v1__delete_request__unpack(NULL, len - 1, b + 1);
    if (r != NULL) {
      size_t deleted = 0;
      st = qv_collection_delete(c, r->n_ids, r->ids, &deleted, &err);
      quiver__v1__delete_request__free_unpacked(r, NULL);
    }
  }
  qv__entry_slot_put(f->e);
  if (st != QV_OK && st != QV_EINVAL) { /* EINVAL: skipped by the serving version too */
    f->st = st;
    f->err = err;
    return 1;
  }
  f->records++;
  f->next = seq + 1;
  return f->next > f->last;
}

/* Runs a sample of searches on the staged version (64 of its own vectors), so that its first
 * real queries do not pay for pages never touched. */
static void warm(qv__entry *e, uint64_t version) {
  qv_collection *c = qv__entry_slot_get(e, version, NULL);
  if (c == NULL)
    return;
  qv_collection_stats cs;
  qv_collection_stats_get(c, &cs, NULL);
  const size_t n = cs.count < 64 ? cs.count : 64, k = 10;
  float *q = n ? malloc(n * cs.dim * sizeof *q) : NULL;
  float *sc = n ? malloc(n * k * sizeof *sc) : NULL;
  int64_t *ids = n ? malloc(n * k * sizeof *ids) : NULL;
  if (q && sc && ids) {
    /* Its own vectors where the first ids are its (dense ids), ... */
    size_t m = 0;
    for (int64_t id = 0; m < n && id < (int64_t)(cs.count * 4 + 64); id++)
      if (qv_collection_get(c, id, q + m * cs.dim, NULL) == QV_OK)
        m++;
    /* The rest: pseudo-random queries (they touch other lists). */
    uint64_t x = 0x9e3779b97f4a7c15ull ^ version;
    for (size_t i = m * cs.dim; i < n * cs.dim; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      q[i] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
    }
    const qv_search_params p = {.k = k, .nprobe = 0, .generation = version};
    (void)qv_collection_search(c, q, n, &p, sc, ids, NULL);
  }
  free(q);
  free(sc);
  free(ids);
  qv__entry_slot_put(e);
}

/* What a replica does about its collection's versions each turn: feeds a staged version the log
 * records after its rollout's start, warms it, flips to it when the collection's pointer moved,
 * flips back on a rollback, drops a staged version of an aborted rollout and releases the
 * previous one once its rollout is done. */
static void rollout_step(qv__replicas *R, held *h) {
  if (qv_monotonic_s() < h->ro_retry_at)
    return;
  qv__entry *e;
  qv_error err = {0};
  if (qv__registry_get(R->s->reg, h->local, &e, &err) != QV_OK)
    return;
  int kind = QV__SLOT_NONE;
  uint64_t beside = 0;
  double recall = -1;
  qv_collection *c = qv__entry_slot_get(e, 0, &kind);
  if (c != NULL) {
    qv_collection_stats s;
    qv_collection_stats_get(c, &s, NULL);
    beside = s.generation;
    recall = s.build_recall;
    qv__entry_slot_put(e);
  }
  const uint64_t serving = qv_collection_generation(qv__entry_col(e));
  const uint64_t pointer = h->rec.version;
  const qv__froll *ro = h->have_ro && h->ro.uid == h->rec.uid ? &h->ro : NULL;
  const int mine = ro != NULL && kind == QV__SLOT_STAGED && ro->version == beside;
  qv_status st = QV_OK;
  if (kind == QV__SLOT_STAGED &&
      ((ro != NULL && ro->version > beside) ||
       (mine && (ro->state == QV__RO_ABORTED || ro->state == QV__RO_ROLLED_BACK)))) {
    /* Its rollout was aborted (or superseded): drop it. */
    if (qv__entry_slot_drop(e, QV__SLOT_STAGED, NULL, &err) == QV_OK)
      QV_LOG_I("fleet: replica %s: staged version %llu dropped (rollout %s)", h->local,
               (unsigned long long)beside, ro->version > beside ? "superseded" : "aborted");
    h->fed_version = h->warmed_version = 0;
    kind = QV__SLOT_NONE;
  } else if (mine && !qv__entry_slot_fed(e) && ro->shards == h->rec.shards &&
             h->applied >= ro->stage_seq[h->shard] && h->log != NULL) {
    /* The staged snapshot holds the writes up to the rollout's start: the records after it,
     * which the serving version applied already, go onto the staged one too; from then on it
     * takes every record the serving one takes (this thread applies both in turn). */
    const double t0 = qv_monotonic_s();
    feed_ctx f = {.e = e, .next = ro->stage_seq[h->shard] + 1, .last = h->applied};
    if (f.next <= f.last)
      st = qv_jslog_read(h->log, f.next, 2000, on_feed, &f, NULL, &err);
    if (st == QV_OK && f.st != QV_OK)
      st = f.st, err = f.err;
    if (st == QV_OK && f.next <= f.last)
      st = qv_error_set(&err, QV_EUNAVAILABLE, "the log stopped at %llu of %llu",
                        (unsigned long long)(f.next - 1), (unsigned long long)f.last);
    if (st == QV_OK) {
      qv__entry_slot_set_fed(e, 1);
      h->fed_version = beside;
      state_save(h);
      QV_LOG_I("fleet: replica %s: staged version %llu caught up with the log (%llu record(s) "
               "after the rollout's start at %llu, %.2f s)",
               h->local, (unsigned long long)beside, (unsigned long long)f.records,
               (unsigned long long)ro->stage_seq[h->shard], qv_monotonic_s() - t0);
    }
  } else if (mine && qv__entry_slot_fed(e) && h->warmed_version != beside) {
    warm(e, beside);
    h->warmed_version = beside;
  } else if (kind == QV__SLOT_STAGED && pointer == beside && qv__entry_slot_fed(e)) {
    /* The pointer moved to it: serve it (the router already asks for it by number). */
    if ((st = qv__registry_claim_build(R->s->reg, e, &err)) == QV_OK) {
      st = qv__entry_flip(R->s->reg, e, 0, beside, &err);
      qv__entry_end_build(e);
    }
    if (st == QV_OK)
      QV_LOG_I("fleet: replica %s flipped to version %llu (previous %llu held)", h->local,
               (unsigned long long)beside, (unsigned long long)serving);
  } else if (kind == QV__SLOT_PREVIOUS && pointer == beside) {
    if ((st = qv__registry_claim_build(R->s->reg, e, &err)) == QV_OK) {
      st = qv__entry_flip(R->s->reg, e, 1, 0, &err);
      qv__entry_end_build(e);
    }
    if (st == QV_OK)
      QV_LOG_I("fleet: replica %s rolled back to version %llu", h->local,
               (unsigned long long)beside);
  } else if (kind == QV__SLOT_PREVIOUS && pointer == serving &&
             (ro == NULL || ro->state == QV__RO_DONE || ro->version != serving)) {
    if (qv__entry_slot_drop(e, QV__SLOT_PREVIOUS, NULL, &err) == QV_OK)
      QV_LOG_I("fleet: replica %s released version %llu", h->local, (unsigned long long)beside);
  }
  if (st != QV_OK) {
    QV_LOG_W("fleet: replica %s: rollout step: %s (trying again)", h->local, err.msg);
    h->ro_retry_at = qv_monotonic_s() + 1.0;
  }
  /* What the report says. */
  c = qv__entry_slot_get(e, 0, &kind);
  h->beside_version = 0;
  h->beside_kind = 0;
  if (c != NULL) {
    h->beside_version = qv_collection_generation(c);
    h->beside_kind = kind;
    qv_collection_stats s;
    qv_collection_stats_get(c, &s, NULL);
    h->beside_recall = s.build_recall;
    qv__entry_slot_put(e);
  }
  (void)recall;
  h->version = qv_collection_generation(qv__entry_col(e));
  qv__registry_put(R->s->reg, e);
}

/* ---- reports ----------------------------------------------------------------------------- */

static void report_key(qv__replicas *R, const held *h, char *out, size_t cap) {
  snprintf(out, cap, QV__FLEET_REPLICAS "%s/%u/%s", h->name, h->shard, R->node);
}

static void report(qv__replicas *R, held *h) {
  uint64_t count, version;
  int trained;
  local_stats(R, h, &count, &version, &trained);
  const uint64_t lag = h->log_seq > h->applied ? h->log_seq - h->applied : 0;
  /* Searchable once it is close enough to the log's end and has an index when the collection
   * was built (a new replica of a built IVF collection builds first). */
  const int index_ready = h->rec.build_gen == 0 || trained;
  if (h->log_known && lag == 0)
    h->caught_up = 1;
  if (h->rd == NULL || !h->log_known)
    h->state = h->state == QV__REP_LOADING ? QV__REP_LOADING : QV__REP_CATCHING_UP;
  else if (h->caught_up && lag <= (uint64_t)R->cfg->max_lag && index_ready) {
    if (h->state != QV__REP_IN_SYNC) {
      const double secs = qv_monotonic_s() - h->opened_t;
      QV_LOG_I("fleet: replica %s in-sync at log record %llu: %llu records (%llu rows) applied in "
               "%.2f s since its log was opened (%.0f rows/s)",
               h->local, (unsigned long long)h->applied,
               (unsigned long long)(h->applied - h->opened_at),
               (unsigned long long)h->rows_since_open, secs,
               secs > 0 ? (double)h->rows_since_open / secs : 0.0);
    }
    h->state = QV__REP_IN_SYNC;
  } else
    h->state = QV__REP_CATCHING_UP;
  qv__frep r = {.uid = h->rec.uid,
                .state = h->state,
                .applied = h->applied,
                .log_seq = h->log_seq > h->applied ? h->log_seq : h->applied,
                .count = count,
                .index_version = version,
                .built_gen = h->built_gen,
                .version = h->version ? h->version : 1,
                .beside_version = h->beside_version,
                .beside_kind = h->beside_kind,
                .beside_recall = h->beside_recall};
  /* Ready: fed from the log, warmed, and close to the log's end with the serving version. */
  r.beside_ready = h->beside_kind == QV__SLOT_PREVIOUS ||
                   (h->beside_kind == QV__SLOT_STAGED && h->fed_version == h->beside_version &&
                    h->warmed_version == h->beside_version && h->state == QV__REP_IN_SYNC);
  snprintf(r.addr, sizeof r.addr, "%.255s", R->addr);
  pthread_mutex_lock(&R->mu);
  snprintf(r.build_error, sizeof r.build_error, "%s", h->build_error);
  pthread_mutex_unlock(&R->mu);
  char *json = qv__frep_json(&r);
  if (json == NULL)
    return;
  const int64_t lease = qv__member_lease(R->m);
  const double now = qv_monotonic_s();
  const int changed = h->report == NULL || strcmp(json, h->report) != 0;
  /* A state change goes at once; sequences and counts at most every half poll period. */
  const int state_changed =
      h->report == NULL || strstr(h->report, qv__rep_state_name(h->state)) == NULL;
  if (!changed && lease == h->report_lease) {
    free(json);
    return;
  }
  if (!state_changed && lease == h->report_lease &&
      now - h->report_t < (double)R->cfg->map_poll_ms / 2e3) {
    free(json);
    return;
  }
  char key[256];
  report_key(R, h, key, sizeof key);
  qv_error err = {0};
  if (qv_etcd_put(R->etcd, key, json, strlen(json), lease, NULL, &err) == QV_OK) {
    free(h->report);
    h->report = json;
    h->report_lease = lease;
    h->report_t = now;
  } else {
    free(json);
    QV_LOG_W("fleet: reporting %s: %s", h->local, err.msg);
  }
}

/* ---- assignments ------------------------------------------------------------------------- */

static void held_free(qv__replicas *R, held *h, int drop) {
  if (h->building) {
    pthread_join(h->bt, NULL);
    h->building = 0;
  }
  close_log(h);
  if (drop) {
    Quiver__V1__DropCollectionRequest d = QUIVER__V1__DROP_COLLECTION_REQUEST__INIT;
    d.name = h->local;
    qv_error err = {0};
    if (call_local(R, M_DROP, &d.base, &err) != QV_OK && err.code != QV_ENOTFOUND)
      QV_LOG_W("fleet: dropping replica %s: %s", h->local, err.msg);
    unlink(h->state_path);
    char key[256];
    report_key(R, h, key, sizeof key);
    (void)qv_etcd_delete(R->etcd, key, 0, NULL, &err);
    QV_LOG_I("fleet: replica %s dropped (no longer assigned here)", h->local);
  }
  free(h->report);
  free(h);
}

typedef struct sync_ctx {
  qv__replicas *R;
  qv__fcoll *colls;
  size_t ncolls, cap;
  struct {
    char name[QV__FLEET_NAME_MAX + 1];
    uint32_t shard;
  } * want;
  size_t nwant, wcap;
  struct {
    char name[QV__FLEET_NAME_MAX + 1];
    qv__froll r;
  } * ros;
  size_t nro, rcap;
} sync_ctx;

static int on_coll(void *user, const char *key, const char *val, size_t len) {
  (void)key;
  sync_ctx *c = user;
  if (c->ncolls == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 8;
    qv__fcoll *n = realloc(c->colls, cap * sizeof *n);
    if (n == NULL)
      return 1;
    c->colls = n;
    c->cap = cap;
  }
  qv_error err = {0};
  if (qv__fcoll_parse(val, len, &c->colls[c->ncolls], &err) == QV_OK)
    c->ncolls++;
  return 0;
}

static int on_assign(void *user, const char *key, const char *val, size_t len) {
  (void)val;
  (void)len;
  sync_ctx *c = user;
  /* /quiver/assign/<node>/<name>/<shard> */
  const char *rest = key + strlen(QV__FLEET_ASSIGN) + strlen(c->R->node) + 1;
  const char *slash = strrchr(rest, '/');
  if (slash == NULL || (size_t)(slash - rest) > QV__FLEET_NAME_MAX)
    return 0;
  if (c->nwant == c->wcap) {
    size_t cap = c->wcap ? 2 * c->wcap : 8;
    void *n = realloc(c->want, cap * sizeof *c->want);
    if (n == NULL)
      return 1;
    c->want = n;
    c->wcap = cap;
  }
  memcpy(c->want[c->nwant].name, rest, (size_t)(slash - rest));
  c->want[c->nwant].name[slash - rest] = '\0';
  c->want[c->nwant].shard = (uint32_t)strtoul(slash + 1, NULL, 10);
  c->nwant++;
  return 0;
}

static int on_rollout(void *user, const char *key, const char *val, size_t len) {
  sync_ctx *c = user;
  if (c->nro == c->rcap) {
    size_t cap = c->rcap ? 2 * c->rcap : 4;
    void *n = realloc(c->ros, cap * sizeof *c->ros);
    if (n == NULL)
      return 1;
    c->ros = n;
    c->rcap = cap;
  }
  qv_error err = {0};
  if (qv__froll_parse(val, len, &c->ros[c->nro].r, &err) == QV_OK) {
    snprintf(c->ros[c->nro].name, sizeof c->ros[c->nro].name, "%s",
             key + strlen(QV__FLEET_ROLLOUTS));
    c->nro++;
  }
  return 0;
}

static const qv__fcoll *find_coll(const sync_ctx *c, const char *name) {
  for (size_t i = 0; i < c->ncolls; i++)
    if (strcmp(c->colls[i].name, name) == 0)
      return &c->colls[i];
  return NULL;
}

/* Once, after the first reading of the assignments: a replica this node held before it stopped
 * (its state file is in DATA_DIR/fleet) that is no longer assigned here (the controller moved it
 * while the node was away) is dropped, so that it does not hold memory and disk for nothing. */
static void sweep_leftovers(qv__replicas *R) {
  DIR *d = opendir(R->fleet_dir);
  if (d == NULL)
    return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const size_t n = strlen(de->d_name);
    if (n < 7 || n - 6 > QV__NAME_MAX || strcmp(de->d_name + n - 6, ".state") != 0)
      continue;
    char local[QV__NAME_MAX + 1];
    memcpy(local, de->d_name, n - 6);
    local[n - 6] = '\0';
    int held = 0;
    for (size_t i = 0; i < R->n && !held; i++)
      held = strcmp(R->h[i]->local, local) == 0;
    if (held)
      continue;
    Quiver__V1__DropCollectionRequest q = QUIVER__V1__DROP_COLLECTION_REQUEST__INIT;
    q.name = local;
    qv_error err = {0};
    if (call_local(R, M_DROP, &q.base, &err) == QV_OK || err.code == QV_ENOTFOUND) {
      char path[QV_PATH_MAX];
      snprintf(path, sizeof path, "%.3900s/%.64s.state", R->fleet_dir, local);
      unlink(path);
      QV_LOG_I("fleet: replica %s dropped (held before this start, assigned elsewhere since)",
               local);
    } else {
      QV_LOG_W("fleet: dropping the leftover replica %s: %s", local, err.msg);
    }
  }
  closedir(d);
}

static void sync_assignments(qv__replicas *R) {
  sync_ctx c = {.R = R};
  char prefix[128];
  snprintf(prefix, sizeof prefix, QV__FLEET_ASSIGN "%s/", R->node);
  qv_error err = {0};
  if (qv_etcd_range_prefix(R->etcd, QV__FLEET_COLLECTIONS, on_coll, &c, NULL, &err) != QV_OK ||
      qv_etcd_range_prefix(R->etcd, prefix, on_assign, &c, NULL, &err) != QV_OK ||
      qv_etcd_range_prefix(R->etcd, QV__FLEET_ROLLOUTS, on_rollout, &c, NULL, &err) != QV_OK) {
    QV_LOG_D("fleet: reading assignments: %s (keeping the replicas as they are)", err.msg);
    free(c.colls);
    free(c.want);
    free(c.ros);
    return;
  }
  for (size_t i = 0; i < R->n; i++)
    R->h[i]->assigned = 0;
  for (size_t w = 0; w < c.nwant; w++) {
    const qv__fcoll *rec = find_coll(&c, c.want[w].name);
    if (rec == NULL || c.want[w].shard >= rec->shards)
      continue;
    held *h = NULL;
    for (size_t i = 0; i < R->n && h == NULL; i++)
      if (strcmp(R->h[i]->name, rec->name) == 0 && R->h[i]->shard == c.want[w].shard &&
          R->h[i]->rec.uid == rec->uid)
        h = R->h[i];
    if (h == NULL) {
      if (R->n == R->cap) {
        size_t cap = R->cap ? 2 * R->cap : 8;
        held **n = realloc(R->h, cap * sizeof *n);
        if (n == NULL)
          continue;
        R->h = n;
        R->cap = cap;
      }
      if ((h = calloc(1, sizeof *h)) == NULL)
        continue;
      snprintf(h->name, sizeof h->name, "%s", rec->name);
      h->shard = c.want[w].shard;
      qv__fleet_local_name(rec->name, h->shard, h->local, sizeof h->local);
      snprintf(h->state_path, sizeof h->state_path, "%.3900s/%.64s.state", R->fleet_dir, h->local);
      h->state = QV__REP_LOADING;
      R->h[R->n++] = h;
    }
    h->rec = *rec; /* build requests arrive this way */
    h->assigned = 1;
    h->have_ro = 0;
    for (size_t k = 0; k < c.nro; k++)
      if (strcmp(c.ros[k].name, rec->name) == 0) {
        h->ro = c.ros[k].r;
        h->have_ro = 1;
      }
  }
  for (size_t i = 0; i < R->n;) {
    if (R->h[i]->assigned) {
      i++;
      continue;
    }
    held_free(R, R->h[i], 1);
    R->h[i] = R->h[--R->n];
  }
  if (!R->swept) {
    sweep_leftovers(R);
    R->swept = 1;
  }
  free(c.colls);
  free(c.want);
  free(c.ros);
}

/* ---- the thread -------------------------------------------------------------------------- */

static void *replicas_main(void *arg) {
  qv__replicas *R = arg;
  double next_sync = 0;
  for (;;) {
    pthread_mutex_lock(&R->mu);
    const int stop = R->stop;
    pthread_mutex_unlock(&R->mu);
    if (stop)
      break;
    const double now = qv_monotonic_s();
    if (now >= next_sync) {
      sync_assignments(R);
      next_sync = now + (double)R->cfg->map_poll_ms / 1e3;
    }
    int busy = 0;
    for (size_t i = 0; i < R->n; i++) {
      held *h = R->h[i];
      if ((h->log == NULL || h->rd == NULL) && qv_monotonic_s() >= h->retry_at)
        open_held(R, h);
      const int got = apply_some(R, h);
      busy |= got;
      const double now = qv_monotonic_s();
      if (got || h->rd == NULL || h->log_seq <= h->applied)
        h->progress_t = now;
      /* Behind the log's end and nothing delivered for 2 s: the consumer is stuck (one that lost
       * its server while JetStream had no stream leader is not always re-created by nats.c).
       * The reader is opened again after the last record applied. */
      if (h->rd != NULL && h->log_seq > h->applied && now - h->progress_t > 2.0) {
        QV_LOG_W("fleet: replica %s: no log record for 2 s, %llu behind: opening its reader again",
                 h->local, (unsigned long long)(h->log_seq - h->applied));
        qv_jslog_reader_close(h->rd);
        h->rd = NULL;
        h->progress_t = now;
      }
      /* The log's end, when this replica has nothing more to apply right now. */
      if (h->log != NULL && !got && qv_monotonic_s() - h->log_t > 0.1) {
        uint64_t last;
        qv_error err = {0};
        if (qv_jslog_last_seq(h->log, &last, &err) == QV_OK) {
          h->log_seq = last;
          h->log_known = 1;
        }
        h->log_t = qv_monotonic_s();
      }
      const uint64_t lag = h->log_seq > h->applied ? h->log_seq - h->applied : 0;
      build_step(R, h, lag);
      if (h->log != NULL)
        rollout_step(R, h);
      report(R, h);
    }
    if (!busy) {
      pthread_mutex_lock(&R->mu);
      if (!R->stop)
        qv_cond_wait_ms(&R->cv, &R->mu, 20);
      pthread_mutex_unlock(&R->mu);
    }
  }
  return NULL;
}

qv_status qv__replicas_start(qv__replicas **out, qv__server *s, const qv__config *cfg,
                             qv__member *m, const char *etcd, const char *nats, const char *node,
                             const char *addr, qv_error *err) {
  *out = NULL;
  if (nats == NULL || nats[0] == '\0')
    return qv_error_set(err, QV_EINVAL,
                        "--cluster: a shard server needs the write log's NATS servers too "
                        "(etcd=...,nats=nats://HOST:PORT[,nats://...])");
  qv__replicas *R = calloc(1, sizeof *R);
  if (R == NULL)
    return qv_error_set(err, QV_ENOMEM, "out of memory");
  R->s = s;
  R->cfg = cfg;
  R->m = m;
  snprintf(R->nats, sizeof R->nats, "%s", nats);
  snprintf(R->node, sizeof R->node, "%s", node);
  snprintf(R->addr, sizeof R->addr, "%s", addr);
  snprintf(R->fleet_dir, sizeof R->fleet_dir, "%.3000s/fleet", cfg->data_dir);
  pthread_mutex_init(&R->mu, NULL);
  qv_cond_init_monotonic(&R->cv);
  qv_status st = qv_mkdirs(R->fleet_dir, err);
  if (st == QV_OK)
    st = qv_etcd_open(&R->etcd, etcd, 5000, err);
  if (st == QV_OK && pthread_create(&R->thr, NULL, replicas_main, R) != 0)
    st = qv_error_set(err, QV_ENOMEM, "cannot start the replicas' thread");
  if (st != QV_OK) {
    qv_etcd_close(R->etcd);
    pthread_cond_destroy(&R->cv);
    pthread_mutex_destroy(&R->mu);
    free(R);
    return st;
  }
  *out = R;
  return QV_OK;
}

void qv__replicas_stop(qv__replicas *R) {
  if (R == NULL)
    return;
  pthread_mutex_lock(&R->mu);
  R->stop = 1;
  pthread_cond_signal(&R->cv);
  pthread_mutex_unlock(&R->mu);
  pthread_join(R->thr, NULL);
  for (size_t i = 0; i < R->n; i++) {
    if (R->h[i]->applied != R->h[i]->saved_applied)
      state_save(R->h[i]);
    held_free(R, R->h[i], 0);
  }
  free(R->h);
  qv_etcd_close(R->etcd);
  pthread_cond_destroy(&R->cv);
  pthread_mutex_destroy(&R->mu);
  free(R);
}

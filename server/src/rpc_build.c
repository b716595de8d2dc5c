/* BuildIndex (server streaming), and what builds and imports share: the count a stop waits for,
 * their threads, their recall options and their outcome. */
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "server_internal.h"

/* How a build or import ended, for quiver_builds_total. */
const char *qv__build_outcome(qv_status st) {
  return st == QV_OK                                    ? "ok"
         : st == QV_EPRECONDITION || st == QV_ENOMEM    ? "refused"
         : st == QV_ECANCELLED || st == QV_EUNAVAILABLE ? "cancelled"
                                                        : "failed";
}

/* ---- long-running work (builds, imports) -------------------------------------------------- */

/* Counts a build or import that is about to start, checked against a stop under one lock: the
 * stop either waits for it or it never starts. */
qv_status qv__long_work_begin(qv__server *s, const char *what, qv_error *err) {
  qv_status st = QV_OK;
  pthread_mutex_lock(&s->build_mu);
  if (atomic_load(&s->stopping))
    st = qv_error_set(err, QV_EUNAVAILABLE, "the server is shutting down: %s after restart", what);
  else
    s->builds++;
  pthread_mutex_unlock(&s->build_mu);
  return st;
}

void qv__long_work_end(qv__server *s) {
  pthread_mutex_lock(&s->build_mu);
  s->builds--;
  pthread_cond_broadcast(&s->build_cv);
  pthread_mutex_unlock(&s->build_mu);
}

int qv__spawn_detached(void *(*fn)(void *), void *arg) {
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
qv_status qv__build_opts_from(const qv__server *s, qv_build_opts *o, double recall_floor,
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
  atomic_fetch_sub(&qv__calls_in_flight, 1);
}

/* With b->mu held: start the next send if none is in flight. */
/* The last message of a successful build: phase "done", the collection, the build's report. */
void qv__build_final(qv__entry *e, const qv_build_report *rep, double t0,
                     Quiver__V1__BuildIndexProgress *p, Quiver__V1__CollectionInfo *info,
                     char *spec_buf) {
  p->phase = "done";
  p->done = p->total = 1;
  p->finished = 1;
  p->elapsed_seconds = qv_monotonic_s() - t0;
  qv__fill_info(e, info, spec_buf);
  p->info = info;
  p->recall = rep->recall;
  p->recall_k = rep->recall_k;
  p->recall_nprobe = rep->recall_nprobe;
  p->tuned_nprobe = rep->tuned_nprobe;
  p->caught_up = rep->caught_up;
}

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
      qv__build_final(b->e, &b->rep, b->t0, &p, &info, spec);
      b->send_buf = qv__wire_pack(&p.base);
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
    p.elapsed_seconds = qv_monotonic_s() - b->t0;
    b->send_buf = qv__wire_pack(&p.base);
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
qv_status qv__build_run(qv__server *s, qv__entry *e, qv_build_opts *opts, qv_progress_fn progress,
                        void *user, qv_build_report *rep, qv_error *err) {
  QV_LOG_I("BuildIndex collection=%s started", qv__entry_name(e));
  if (s->reg->cfg.memory_budget > 0) {
    /* What the other collections leave, and the data version held beside e (staged or previous:
     * it stays in memory through the build). */
    uint64_t others = qv__registry_memory(s->reg, e) + qv__entry_slot_bytes(e);
    opts->memory_budget =
        others < s->reg->cfg.memory_budget ? s->reg->cfg.memory_budget - others : 1;
  }
  qv_status st = qv_collection_build_ex(qv__entry_col(e), opts, progress, user, rep, err);
  if (st == QV_OK) {
    if (progress)
      progress(user, "save", 0, 1);
    st = qv__entry_save(e, err);
  }
  qv__entry_end_build(e);
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
  qv_status st = qv__build_run(s, b->e, &b->opts, build_progress, b, &b->rep, &err);
  if (st == QV_OK) {
    qv_collection_stats cs;
    qv_collection_stats_get(qv__entry_col(b->e), &cs, NULL);
    QV_LOG_I("BuildIndex collection=%s done in %.2f s, recall@%u=%.4f at nprobe %u%s, %llu "
             "write(s) caught up, serving from %s",
             qv__entry_name(b->e), qv_monotonic_s() - b->t0, b->rep.recall_k, b->rep.recall,
             b->rep.recall_nprobe, b->rep.tuned_nprobe ? " (tuned)" : "",
             (unsigned long long)b->rep.caught_up, cs.placement);
    if (cs.device == QV_DEVICE_GPU && cs.gpu < 0)
      QV_LOG_W("collection '%s' asked for a GPU but serves from the CPU: %s", qv__entry_name(b->e),
               cs.placement);
  } else
    qv__log_failure("BuildIndex", qv__entry_name(b->e), st, err.msg);
  qv__metrics_call_end(M_BUILD, st, b->t0);
  qv__metrics_build("build", qv__build_outcome(st), qv_monotonic_s() - b->t0);
  pthread_mutex_lock(&b->mu);
  b->finished = 1;
  b->result = st;
  b->err = err;
  build_maybe_send(b);
  pthread_mutex_unlock(&b->mu);
  build_release(b);
  qv__long_work_end(s);
  return NULL;
}

/* A BuildIndex request's collection (a reference in *e) and options, and the collection claimed
 * for the build (*claimed = 1). */
qv_status qv__build_prepare(qv__server *s, const Quiver__V1__BuildIndexRequest *r, qv__entry **e,
                            qv_build_opts *bo, int *claimed, qv_error *err) {
  qv_build_opts_init(bo);
  *claimed = 0;
  qv_status st = qv__registry_get(s->reg, r->collection, e, err);
  if (st == QV_OK)
    st = qv__build_opts_from(s, bo, r->recall_floor, r->target_recall, r->eval_queries, r->eval_k,
                             err);
  if (st == QV_OK && (st = qv__registry_claim_build(s->reg, *e, err)) == QV_OK)
    *claimed = 1;
  return st;
}

void qv__start_build(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                     grpc_byte_buffer *payload) {
  qv_error err = {0};
  Quiver__V1__BuildIndexRequest *r = (Quiver__V1__BuildIndexRequest *)qv__decode(
      payload, &quiver__v1__build_index_request__descriptor, &err);
  qv__entry *e = NULL;
  qv_build_opts bo;
  int claimed = 0;
  qv_status st = r ? qv__build_prepare(s, r, &e, &bo, &claimed, &err) : QV_EINVAL;
  if (r)
    protobuf_c_message_free_unpacked(&r->base, NULL);
  build_call *b = st == QV_OK ? calloc(1, sizeof *b) : NULL;
  if (st == QV_OK && b == NULL)
    st = qv_error_set(&err, QV_ENOMEM, "out of memory");
  if (st == QV_OK) {
    if ((st = qv__long_work_begin(s, "build", &err)) != QV_OK)
      free(b);
  }
  if (st != QV_OK) {
    if (claimed)
      qv__entry_end_build(e);
    qv__log_failure("BuildIndex", e ? qv__entry_name(e) : NULL, st, err.msg);
    if (e)
      qv__registry_put(s->reg, e);
    qv__metrics_call_end(M_BUILD, st, qv_monotonic_s());
    qv__metrics_build("build", qv__build_outcome(st), 0);
    qv__finish_call(call, md, 0, NULL, st, err.msg);
    return;
  }
  b->send_tag.fn = on_build_send;
  b->close_tag.fn = on_build_close;
  b->s = s;
  b->call = call;
  b->md = *md;
  b->e = e;
  b->t0 = qv_monotonic_s();
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
  if (!qv__spawn_detached(build_thread, b)) {
    qv__entry_end_build(e);
    pthread_mutex_lock(&b->mu);
    b->finished = 1;
    b->result = qv_error_set(&b->err, QV_ENOMEM, "cannot start a build thread");
    build_maybe_send(b);
    pthread_mutex_unlock(&b->mu);
    build_release(b);
    qv__long_work_end(s);
  }
}

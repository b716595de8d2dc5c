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
 *   - Health/Watch (server streaming): no thread; a list of open watches, each sent the status
 *     when it changes (one send in flight, latest wins) and ended at a stop;
 *   - anything else gets UNIMPLEMENTED (a generic request is kept posted for that).
 * docs/grpc-core.md has the facts about gRPC's C core this relies on.
 *
 * This file: start and stop, the completion queues and their pollers, the writer threads,
 * posting requests and dispatching calls, TLS credentials. The rest:
 *   server_internal.h  struct qv__server and what one file defines for another
 *   call.c/.h          qv__tag, the codecs, finishing a call, its log line and metrics
 *   methods.c/.h       the method table
 *   rpc_search.c       Search, inline and batched; the slow query log
 *   rpc_admin.c        Create/Drop/Describe/ListCollections, Delete, Health/Check
 *   rpc_watch.c        Health/Watch: the open watches, told of each change of the health status
 *   rpc_upsert.c       the Upsert stream       rpc_import.c  the ImportIndex stream and its apply
 *   rpc_build.c        the BuildIndex stream; what builds and imports share (long work, threads)
 *   info.c             CollectionInfo from a collection
 *   metrics_collect.c  the Prometheus collector          watchdog.c    the accept watchdog
 *   offline.c          calls without gRPC (fuzz targets, tests) */
#define _GNU_SOURCE
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <omp.h>

#include "log.h"
#include "metrics.h"
#include "quiver/fsutil.h"
#include "server_internal.h"

enum { NPENDING = 4 };

/* ---- writer threads (what they are for: QV__WRITERS in server_internal.h) ----------------- */

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
    const method *m = &qv__method_table[p->method];
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
  const double t0 = qv_monotonic_s();
  qv_error err = {0};
  grpc_byte_buffer *resp = NULL;
  qv_status st;
  ProtobufCMessage *req = qv__decode(payload, m->req_desc, &err);
  const char *collection = NULL;
  if (req == NULL) {
    st = QV_EINVAL;
  } else if (qv__deadline_passed(deadline)) {
    st = qv_error_set(&err, QV_EDEADLINE, "the deadline passed before the call was started");
  } else if (s->router == NULL && m == &qv__method_table[M_SEARCH] &&
             qv__search_batched(s, call, md, deadline, req, t0)) {
    return; /* answered by the batcher (or refused there) */
  } else {
    st = (s->router != NULL && m->rfn != NULL ? m->rfn : m->fn)(s, req, &deadline, &resp, &err);
  }
  if (st != QV_OK) {
    if (req != NULL && req->descriptor == &quiver__v1__search_request__descriptor)
      collection = ((Quiver__V1__SearchRequest *)req)->collection;
    qv__log_failure(qv__method_short(m), collection, st, err.msg);
  }
  qv__metrics_call_end((int)(m - qv__method_table), st, t0); /* counted before the answer: a client
                                                that sees the answer sees the count */
  qv__finish_call(call, md, 0, resp, st, err.msg);
  if (st == QV_OK && m == &qv__method_table[M_SEARCH])
    qv__slow_query(s, (const Quiver__V1__SearchRequest *)req, t0, 0);
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
  unary_job *j = m->writes ? calloc(1, sizeof *j) : NULL;
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
  atomic_fetch_add(&qv__calls_in_flight,
                   1); /* finished by qv__finish_call, build_release or watch_free */
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
    qv__metrics_call_end(NMETHODS, QV_EUNSUPPORTED, qv_monotonic_s());
    qv__finish_call(call, &md, 0, NULL, QV_EUNSUPPORTED, msg);
  }
  /* Re-post first, so the server keeps accepting while we work. */
  post(p);
  if (mi < 0)
    return;
  const method *m = &qv__method_table[mi];
  if (s->auth != NULL && m->role != QV__ROLE_NONE) {
    const qv__role need = m->role;
    const qv__role have = qv__auth_role(s->auth, &md);
    const char *why = NULL;
    qv_status st = QV_OK;
    if (have == QV__ROLE_NONE) {
      st = QV_EUNAUTHENTICATED;
      why = "a missing or unknown bearer token: send 'authorization: Bearer TOKEN' (quiver "
            "--token or $QUIVER_TOKEN) with a token from quiverd's --auth-tokens file";
    } else if (have < need) {
      st = QV_EPERMISSION;
      why =
          "a read token may only search, get, describe, list and check health: this call needs an "
          "admin token";
    }
    if (st != QV_OK) {
      char msg[300];
      snprintf(msg, sizeof msg, "%s refused: %s", qv__method_short(m), why);
      qv__log_failure(qv__method_short(m), NULL, st, msg);
      qv__metrics_call_end(mi, st, qv_monotonic_s());
      qv__finish_call(call, &md, 0, NULL, st, msg);
      if (payload)
        grpc_byte_buffer_destroy(payload);
      return;
    }
  }
  if (m->kind != K_UNARY)
    (s->router != NULL && m->rstart != NULL ? m->rstart : m->start)(s, call, &md, payload);
  else if (unary_to_writer(s, m, call, &md, deadline, payload))
    return;
  else
    handle_unary(s, m, call, &md, deadline, payload);
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

/* Frees a server whose threads never started; any part may be missing (NULL-tolerant). */
static void free_unstarted(qv__server *s) {
  for (int i = 0; s->cqs != NULL && i < s->ncq; i++)
    if (s->cqs[i] != NULL)
      grpc_completion_queue_shutdown(s->cqs[i]);
  if (s->server != NULL)
    grpc_server_destroy(s->server);
  for (int i = 0; s->cqs != NULL && i < s->ncq; i++)
    if (s->cqs[i] != NULL)
      grpc_completion_queue_destroy(s->cqs[i]);
  free(s->cqs);
  free(s->threads);
  free(s->pargs);
  free(s->handles);
  pthread_mutex_destroy(&s->build_mu);
  pthread_cond_destroy(&s->build_cv);
  pthread_mutex_destroy(&s->wq_mu);
  pthread_cond_destroy(&s->wq_cv);
  pthread_mutex_destroy(&s->watch_mu);
  qv__auth_free(s->auth);
  free(s);
}

int qv__server_pollers(const qv__server *s) {
  return s->ncq - 1; /* one more queue takes only health checks */
}

qv_status qv__server_start(qv__server **out, qv__config *cfg, qv__registry *reg,
                           struct qv__router *router, int *port, qv_error *err) {
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
  s->reg = reg;
  s->router = router;
  pthread_mutex_init(&s->build_mu, NULL);
  pthread_cond_init(&s->build_cv, NULL);
  pthread_mutex_init(&s->wq_mu, NULL);
  pthread_cond_init(&s->wq_cv, NULL);
  pthread_mutex_init(&s->watch_mu, NULL);
  s->watch_init = 1;
  qv_status st;
  int metrics = 0;
  if (qv_device_parse(cfg->device, &s->default_device, err) != QV_OK) {
    st = qv_error_prefix(err, QV_EINVAL, "--device");
    goto fail;
  }
  /* The polling threads, plus one that takes only health checks: a probe is answered while
   * every other thread runs a long search. */
  /* A router's search waits on its polling thread for the shards' answers (network, not CPU):
   * it gets 8 per core by default, so that calls in flight are not capped at the core count. */
  const int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
  const int pollers = cfg->threads > 0 ? (int)cfg->threads
                      : router != NULL ? 8 * (cores > 2 ? cores : 2)
                                       : cores;
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
    st = qv_error_set(err, QV_ENOMEM, "out of memory starting the gRPC server");
    goto fail;
  }
  for (int i = 0; i < NMETHODS; i++)
    s->handles[i] = grpc_server_register_method(s->server, qv__method_table[i].path, NULL,
                                                qv__method_table[i].kind == K_CLIENT_STREAM
                                                    ? GRPC_SRM_PAYLOAD_NONE
                                                    : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
                                                0);
  for (int i = 0; i < s->ncq; i++) {
    s->cqs[i] = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cqs[i], NULL);
  }
  /* The metrics endpoint before the port: a server with a bound port must be started and shut
   * down before it may be destroyed (gRPC asserts it), so nothing after the bind may fail. */
  static const char *names[NMETHODS + 1];
  for (int i = 0; i < NMETHODS; i++)
    names[i] = qv__method_short(&qv__method_table[i]);
  names[NMETHODS] = "unknown";
  qv__metrics_init(names, NMETHODS + 1);
  if (cfg->metrics_listen[0] != '\0') {
    int mport = 0;
    if ((st = qv__metrics_start(cfg->metrics_listen, qv__metrics_collect, s, &mport, err)) != QV_OK)
      goto fail;
    metrics = 1;
    QV_LOG_I("metrics on http://%.200s/metrics (port %d)", cfg->metrics_listen, mport);
  }
  *port = grpc_server_add_http2_port(s->server, cfg->listen, creds);
  grpc_server_credentials_release(creds);
  creds = NULL;
  if (*port == 0) {
    st = qv_error_set(err, QV_EUNAVAILABLE, "cannot listen on %s (address in use or invalid?)",
                      cfg->listen);
    goto fail;
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
        /* The last queue: health checks (Check, Watch) only. */
        if ((q == s->ncq - 1) != (m == M_HEALTH || m == M_HEALTH_WATCH))
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
  qv__watchdog_start(s, *port);
  *out = s;
  return QV_OK;
fail:
  if (metrics)
    qv__metrics_stop();
  if (creds != NULL)
    grpc_server_credentials_release(creds);
  free_unstarted(s);
  return st;
}

void qv__server_stop(qv__server *s) {
  if (s == NULL)
    return;
  atomic_store(&s->stopping, 1); /* health says NOT_SERVING; builds see it and cancel */
  qv__health_changed(s);         /* open watches get NOT_SERVING and their end */
  if (s->wd_init)
    qv__watchdog_stop(s);
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
    const int left = atomic_load(&qv__calls_in_flight);
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
  for (int waited_ms = 0; atomic_load(&qv__calls_in_flight) > 0; waited_ms += 10) {
    if (waited_ms > 0 && waited_ms % 5000 == 0)
      QV_LOG_W("waiting for %d call(s) to end their current step",
               atomic_load(&qv__calls_in_flight));
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
  pthread_mutex_destroy(&s->watch_mu); /* every watch ended: they count in qv__calls_in_flight */
  free(s->cqs);
  free(s->threads);
  free(s->pargs);
  free(s->handles);
  qv__auth_free(s->auth);
  free(s);
}

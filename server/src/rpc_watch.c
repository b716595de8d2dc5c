/* grpc.health.v1.Health/Watch (server streaming), and the health status Check answers too.
 *
 * A watch sends the status of its service at once, then a message each time it changes, and only
 * then: SERVING, NOT_SERVING (the server is stopping, or the accept watchdog found the listener
 * deaf), or SERVICE_UNKNOWN for a service other than "" and "quiver.v1.Retrieval" (the stream
 * stays open: ours never becomes known, so it lasts until the client cancels or the server stops).
 *
 * No thread per watch: the open watches are a list in the server (s->watch_mu), and whoever
 * changes the status calls qv__health_changed (the stop, the watchdog), which starts the next send
 * of every watch whose status moved. A watch has one send in flight at most; when it completes,
 * the latest status goes out if it differs from the last one sent (changes in between coalesce).
 * At a stop every watch gets NOT_SERVING (an unknown service's too: the server is going away) and
 * then the status UNAVAILABLE "the server is shutting down" in the same batch — the code the other
 * calls a stop ends get, and the one the health protocol tells clients to retry with backoff — so
 * open watches end at once and never hold a stop until its grace period (they count in
 * qv__calls_in_flight, which the stop waits for). A client that cancels its watch is unlinked
 * when its RECV_CLOSE_ON_SERVER completes and freed when the last of its ops has. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "log.h"
#include "server_internal.h"

#define HS(x) GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__##x

int qv__health_known(const char *service) {
  return service == NULL || service[0] == '\0' || strcmp(service, "quiver.v1.Retrieval") == 0;
}

int qv__health_serving(qv__server *s) {
  return !atomic_load(&s->stopping) && !atomic_load(&s->accept_dead);
}

/* One open watch. Every field after the tags is guarded by s->watch_mu. */
struct qv__watch {
  qv__tag send_tag, close_tag;
  qv__server *s;
  grpc_call *call;
  grpc_metadata_array md;
  qv__watch *prev, *next; /* s->watches, until the call is closed */
  int known;              /* the service is one of ours */
  int refs;               /* the close op, and the send in flight */
  int closed;             /* RECV_CLOSE_ON_SERVER completed: the call is over */
  int send_inflight, final_sent;
  int sent;            /* the status last sent; -1 = none yet */
  int close_cancelled; /* written by RECV_CLOSE_ON_SERVER */
  grpc_byte_buffer *send_buf;
  grpc_slice details;
  double t0;
};

/* The status a watch of a known or unknown service shows now. */
static int watch_status(qv__server *s, int known) {
  if (atomic_load(&s->stopping))
    return HS(NOT_SERVING);
  if (!known)
    return HS(SERVICE_UNKNOWN);
  return qv__health_serving(s) ? HS(SERVING) : HS(NOT_SERVING);
}

static void watch_free(qv__watch *w) {
  /* Ended by the stop (its status sent), or by the client (cancelled, or its deadline). */
  const qv_status st = w->final_sent && !w->close_cancelled ? QV_EUNAVAILABLE : QV_ECANCELLED;
  qv__metrics_call_end(M_HEALTH_WATCH, st, w->t0);
  if (w->send_buf)
    grpc_byte_buffer_destroy(w->send_buf);
  grpc_slice_unref(w->details);
  grpc_metadata_array_destroy(&w->md);
  grpc_call_unref(w->call);
  free(w);
  atomic_fetch_sub(&qv__calls_in_flight, 1);
}

/* With s->watch_mu held: starts the next send of w unless one is in flight or nothing changed.
 * Once the server is stopping, the send carries the status that ends the call. */
static void watch_send_locked(qv__watch *w) {
  if (w->send_inflight || w->closed || w->final_sent)
    return;
  const int ending = atomic_load(&w->s->stopping);
  const int want = watch_status(w->s, w->known);
  if (want == w->sent && !ending)
    return;
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (want != w->sent) {
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)want;
    w->send_buf = qv__wire_pack(&r.base);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = w->send_buf;
    w->sent = want;
  }
  if (ending) {
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = GRPC_STATUS_UNAVAILABLE;
    ops[n++].data.send_status_from_server.status_details = &w->details;
    w->final_sent = 1;
  }
  w->send_inflight = 1;
  w->refs++;
  if (grpc_call_start_batch(w->call, ops, n, &w->send_tag, NULL) != GRPC_CALL_OK) {
    w->send_inflight = 0;
    w->refs--;
    w->final_sent = 1; /* a broken call: send nothing more; the cancel completes its close op */
    grpc_call_cancel(w->call, NULL);
  }
}

static void on_watch_send(void *self, int ok) {
  qv__watch *w = (qv__watch *)((char *)self - offsetof(qv__watch, send_tag));
  qv__server *s = w->s;
  pthread_mutex_lock(&s->watch_mu);
  w->send_inflight = 0;
  if (w->send_buf) {
    grpc_byte_buffer_destroy(w->send_buf);
    w->send_buf = NULL;
  }
  if (!ok)
    w->final_sent = 1; /* the client is gone: its close op ends the watch */
  else
    watch_send_locked(w); /* a change that came while this send was in flight */
  const int last = --w->refs == 0;
  pthread_mutex_unlock(&s->watch_mu);
  if (last)
    watch_free(w);
}

static void on_watch_close(void *self, int ok) {
  (void)ok;
  qv__watch *w = (qv__watch *)((char *)self - offsetof(qv__watch, close_tag));
  qv__server *s = w->s;
  pthread_mutex_lock(&s->watch_mu);
  w->closed = 1;
  if (w->prev)
    w->prev->next = w->next;
  else
    s->watches = w->next;
  if (w->next)
    w->next->prev = w->prev;
  s->nwatches--;
  const int last = --w->refs == 0;
  pthread_mutex_unlock(&s->watch_mu);
  if (last)
    watch_free(w);
}

void qv__start_watch(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                     grpc_byte_buffer *payload) {
  qv_error err = {0};
  Grpc__Health__V1__HealthCheckRequest *r = (Grpc__Health__V1__HealthCheckRequest *)qv__decode(
      payload, &grpc__health__v1__health_check_request__descriptor, &err);
  qv__watch *w = r ? calloc(1, sizeof *w) : NULL;
  qv_status st = r == NULL   ? QV_EINVAL
                 : w == NULL ? qv_error_set(&err, QV_ENOMEM, "out of memory")
                             : QV_OK;
  if (st != QV_OK) {
    if (r)
      protobuf_c_message_free_unpacked(&r->base, NULL);
    qv__log_failure("Watch", NULL, st, err.msg);
    qv__metrics_call_end(M_HEALTH_WATCH, st, qv_monotonic_s());
    qv__finish_call(call, md, 0, NULL, st, err.msg);
    return;
  }
  w->known = qv__health_known(r->service);
  protobuf_c_message_free_unpacked(&r->base, NULL);
  w->send_tag.fn = on_watch_send;
  w->close_tag.fn = on_watch_close;
  w->s = s;
  w->call = call;
  w->md = *md;
  w->sent = -1;
  w->refs = 1; /* the close op */
  w->details = grpc_slice_from_static_string("the server is shutting down");
  w->t0 = qv_monotonic_s();
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[1].data.recv_close_on_server.cancelled = &w->close_cancelled;
  pthread_mutex_lock(&s->watch_mu);
  if (grpc_call_start_batch(call, ops, 2, &w->close_tag, NULL) != GRPC_CALL_OK) {
    pthread_mutex_unlock(&s->watch_mu);
    grpc_call_cancel(call, NULL);
    watch_free(w);
    return;
  }
  /* Listed before its first send, under the lock qv__health_changed takes: a stop that began
   * before this either shows in that send or reaches this watch through the list. */
  w->next = s->watches;
  if (s->watches)
    s->watches->prev = w;
  s->watches = w;
  s->nwatches++;
  watch_send_locked(w);
  pthread_mutex_unlock(&s->watch_mu);
}

void qv__health_changed(qv__server *s) {
  if (!s->watch_init)
    return;
  pthread_mutex_lock(&s->watch_mu);
  for (qv__watch *w = s->watches; w != NULL; w = w->next)
    watch_send_locked(w);
  const int n = s->nwatches;
  pthread_mutex_unlock(&s->watch_mu);
  if (n > 0)
    QV_LOG_I("Health/Watch: %s (%s), told to %d open watch(es)",
             qv__health_serving(s) ? "SERVING" : "NOT_SERVING",
             atomic_load(&s->stopping)      ? "shutting down"
             : atomic_load(&s->accept_dead) ? "the listener stopped accepting"
                                            : "serving",
             n);
}

qv_status qv__health_watch_first(qv__server *s, const ProtobufCMessage *m, grpc_byte_buffer **resp,
                                 qv_error *err) {
  (void)err;
  const Grpc__Health__V1__HealthCheckRequest *r = (const Grpc__Health__V1__HealthCheckRequest *)m;
  Grpc__Health__V1__HealthCheckResponse out = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  out.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)watch_status(
      s, qv__health_known(r->service));
  *resp = qv__wire_pack(&out.base);
  return QV_OK;
}

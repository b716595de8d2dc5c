/* The call object pieces: codecs, finishing a call, its log line and metrics. */
#include "call.h"

#include <grpc/byte_buffer.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "quiver/clock.h"
#include "quiver_wire.h"
#include "registry.h"
#include "strcheck.h"

/* A call to method `mi` (NMETHODS = unknown) ended with st, having started at t0. */
void qv__metrics_call_end(int mi, qv_status st, double t0) {
  qv__metrics_call(mi, qv__to_grpc(st), qv_monotonic_s() - t0);
}

/* Decodes request bytes with the server's checks; NULL with err set when malformed. */
ProtobufCMessage *qv__decode_bytes(const ProtobufCMessageDescriptor *d, const uint8_t *data,
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
ProtobufCMessage *qv__decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d,
                             qv_error *err) {
  if (bb == NULL) {
    qv_error_set(err, QV_EINVAL, "the request carries no %s message", d->name);
    return NULL;
  }
  grpc_slice s;
  if (!qv__wire_slice(bb, &s)) {
    qv_error_set(err, QV_EINVAL, "the request message cannot be read (compression?)");
    return NULL;
  }
  ProtobufCMessage *m = qv__decode_bytes(d, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s), err);
  grpc_slice_unref(s);
  return m;
}

void qv__stream_init(qv__stream *st, grpc_call *call, grpc_metadata_array *md,
                     void (*fn)(void *owner, int ok), int on_writer) {
  st->tag.fn = fn;
  st->tag.on_writer = on_writer;
  st->call = call;
  st->md = *md;
  st->recv = NULL;
  st->t0 = qv_monotonic_s();
}

int qv__stream_recv_next(qv__stream *st) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &st->recv;
  st->recv = NULL;
  return grpc_call_start_batch(st->call, &op, 1, &st->tag, NULL) == GRPC_CALL_OK;
}

ProtobufCMessage *qv__stream_take(qv__stream *st, const ProtobufCMessageDescriptor *d,
                                  qv_error *err) {
  ProtobufCMessage *m = qv__decode(st->recv, d, err);
  grpc_byte_buffer_destroy(st->recv);
  st->recv = NULL;
  return m;
}

int qv__deadline_passed(gpr_timespec deadline) {
  return gpr_time_cmp(deadline, gpr_now(deadline.clock_type)) < 0;
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
atomic_int qv__calls_in_flight;

static void on_finished(void *self, int ok) {
  (void)ok;
  finisher *f = self;
  atomic_fetch_sub(&qv__calls_in_flight, 1);
  if (f->resp)
    grpc_byte_buffer_destroy(f->resp);
  grpc_slice_unref(f->details);
  grpc_metadata_array_destroy(&f->md);
  grpc_call_unref(f->call);
  free(f);
}

/* Sends initial metadata (unless already sent), the optional response and the status; takes
 * ownership of call, md (moved) and resp. */
void qv__finish_call(grpc_call *call, grpc_metadata_array *md, int initial_sent,
                     grpc_byte_buffer *resp, qv_status st, const char *msg) {
  finisher *f = calloc(1, sizeof *f);
  if (f == NULL) { /* cannot even answer: drop the call */
    atomic_fetch_sub(&qv__calls_in_flight, 1);
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

void qv__log_failure(const char *method, const char *collection, qv_status st, const char *msg) {
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

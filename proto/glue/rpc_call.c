/* Synchronous client calls over gRPC's C core: see rpc_call.h. */
#include "rpc_call.h"

#include <string.h>

#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "quiver_wire.h"

int qv__rpc_start(qv__rpc *k, const qv__rpc_peer *p, const char *method, int64_t timeout_ms) {
  memset(k, 0, sizeof *k);
  k->peer = p;
  k->method = method;
  k->cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                   gpr_time_from_millis(timeout_ms > 0 ? timeout_ms : p->timeout_ms, GPR_TIMESPAN));
  grpc_slice m = grpc_slice_from_static_string(method);
  k->call = grpc_channel_create_call(p->ch, NULL, GRPC_PROPAGATE_DEFAULTS, k->cq, m, NULL, deadline,
                                     NULL);
  grpc_metadata_array_init(&k->md_initial);
  grpc_metadata_array_init(&k->md_trailing);
  k->details = grpc_empty_slice();
  return k->call != NULL;
}

int qv__rpc_batch(qv__rpc *k, grpc_op *ops, size_t n) {
  void *tag = ops; /* unique while we wait */
  if (grpc_call_start_batch(k->call, ops, n, tag, NULL) != GRPC_CALL_OK)
    return 0;
  grpc_event ev = grpc_completion_queue_pluck(k->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success;
}

void qv__rpc_end(qv__rpc *k) {
  grpc_metadata_array_destroy(&k->md_initial);
  grpc_metadata_array_destroy(&k->md_trailing);
  grpc_slice_unref(k->details);
  if (k->call)
    grpc_call_unref(k->call);
  grpc_completion_queue_shutdown(k->cq);
  grpc_completion_queue_destroy(k->cq);
}

qv_status qv__rpc_status(const qv__rpc *k, qv_error *err) {
  if (k->status == GRPC_STATUS_OK)
    return QV_OK;
  char *d = grpc_slice_to_c_string(k->details);
  qv_status st = qv_error_set(err, qv__from_grpc(k->status), "%s: %s", qv__grpc_name(k->status),
                              d && *d ? d : "(no details)");
  gpr_free(d);
  return st;
}

grpc_op qv__op_send_initial(const qv__rpc *k) {
  return (grpc_op){.op = GRPC_OP_SEND_INITIAL_METADATA,
                   .flags = k->peer->wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0,
                   .data.send_initial_metadata = {.count = k->peer->n_md, .metadata = k->peer->md}};
}

grpc_op qv__op_send(grpc_byte_buffer *bb) {
  return (grpc_op){.op = GRPC_OP_SEND_MESSAGE, .data.send_message.send_message = bb};
}

grpc_op qv__op_close(void) {
  return (grpc_op){.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT};
}

grpc_op qv__op_recv_initial(qv__rpc *k) {
  return (grpc_op){.op = GRPC_OP_RECV_INITIAL_METADATA,
                   .data.recv_initial_metadata.recv_initial_metadata = &k->md_initial};
}

grpc_op qv__op_recv(grpc_byte_buffer **bb) {
  return (grpc_op){.op = GRPC_OP_RECV_MESSAGE, .data.recv_message.recv_message = bb};
}

grpc_op qv__op_recv_status(qv__rpc *k) {
  return (grpc_op){.op = GRPC_OP_RECV_STATUS_ON_CLIENT,
                   .data.recv_status_on_client = {.trailing_metadata = &k->md_trailing,
                                                  .status = &k->status,
                                                  .status_details = &k->details}};
}

int qv__rpc_send(qv__rpc *k, const ProtobufCMessage *m) {
  grpc_byte_buffer *bb = qv__wire_pack(m);
  grpc_op op = qv__op_send(bb);
  int ok = qv__rpc_batch(k, &op, 1);
  grpc_byte_buffer_destroy(bb);
  return ok;
}

ProtobufCMessage *qv__rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d) {
  grpc_slice s;
  if (!qv__wire_slice(bb, &s))
    return NULL;
  ProtobufCMessage *m =
      protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  return m;
}

qv_status qv__rpc_stream_open(qv__rpc *k, const qv__rpc_peer *p, const char *method,
                              int64_t timeout_ms, int *ok, qv_error *err) {
  if (!qv__rpc_start(k, p, method, timeout_ms)) {
    qv__rpc_end(k);
    return qv_error_set(err, QV_EINTERNAL, "cannot start call %s", method);
  }
  grpc_op op = qv__op_send_initial(k);
  *ok = qv__rpc_batch(k, &op, 1);
  return QV_OK;
}

qv_status qv__rpc_unary(const qv__rpc_peer *p, const char *method, int64_t timeout_ms,
                        const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                        ProtobufCMessage **resp, qv_error *err) {
  *resp = NULL;
  qv__rpc k;
  if (!qv__rpc_start(&k, p, method, timeout_ms)) {
    qv__rpc_end(&k);
    return qv_error_set(err, QV_EINTERNAL, "cannot start call %s", method);
  }
  grpc_byte_buffer *send = qv__wire_pack(req), *recv = NULL;
  grpc_op ops[6] = {qv__op_send_initial(&k), qv__op_send(send),  qv__op_close(),
                    qv__op_recv_initial(&k), qv__op_recv(&recv), qv__op_recv_status(&k)};
  qv_status st;
  if (!qv__rpc_batch(&k, ops, 6)) {
    st = qv_error_set(err, QV_EINTERNAL, "call %s failed to complete", method);
  } else if ((st = qv__rpc_status(&k, err)) == QV_OK) {
    *resp = recv ? qv__rpc_unpack(recv, rd) : NULL;
    if (*resp == NULL)
      st = qv_error_set(err, QV_EINTERNAL, "INTERNAL: %s answered an undecodable message", method);
  }
  grpc_byte_buffer_destroy(send);
  if (recv)
    grpc_byte_buffer_destroy(recv);
  qv__rpc_end(&k);
  return st;
}

/* A client call over gRPC's C core, run synchronously on a completion queue of its own: the
 * machinery of the quiver C client (clients/c), for any client of a gRPC service this repo talks
 * to with protobuf-c messages. A peer is a channel with its defaults; a call is started on it,
 * fed batches of ops (built with the qv__op_* helpers) and ended. Not thread-safe per call; a
 * peer may serve many calls from many threads (gRPC channels are). */
#ifndef QUIVER_RPC_CALL_H
#define QUIVER_RPC_CALL_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "quiver/status.h"

typedef struct qv__rpc_peer {
  grpc_channel *ch;
  int64_t timeout_ms; /* a call's deadline when it names none */
  int wait_for_ready; /* wait for the channel to connect instead of failing fast */
  grpc_metadata *md;  /* sent with every call (e.g. authorization); n_md entries */
  size_t n_md;
} qv__rpc_peer;

typedef struct qv__rpc {
  const qv__rpc_peer *peer;
  grpc_completion_queue *cq;
  grpc_call *call;
  grpc_metadata_array md_initial, md_trailing;
  grpc_status_code status;
  grpc_slice details;
  const char *method;
} qv__rpc;

/* Starts a call of `method` ("/pkg.Service/Method"); timeout_ms <= 0 takes the peer's. 0 when
 * gRPC refused to create it; qv__rpc_end it either way. */
int qv__rpc_start(qv__rpc *k, const qv__rpc_peer *p, const char *method, int64_t timeout_ms);
/* Runs one batch and waits for it: the completion's success flag. */
int qv__rpc_batch(qv__rpc *k, grpc_op *ops, size_t n);
void qv__rpc_end(qv__rpc *k);
/* The call's final status as Quiver's, with gRPC's name and details in err. */
qv_status qv__rpc_status(const qv__rpc *k, qv_error *err);

/* The ops of a call's batches. */
grpc_op qv__op_send_initial(const qv__rpc *k);
grpc_op qv__op_send(grpc_byte_buffer *bb);
grpc_op qv__op_close(void);
grpc_op qv__op_recv_initial(qv__rpc *k);
grpc_op qv__op_recv(grpc_byte_buffer **bb);
grpc_op qv__op_recv_status(qv__rpc *k);

/* Packs m and sends it; 0 when the send failed (the status then says why). */
int qv__rpc_send(qv__rpc *k, const ProtobufCMessage *m);
/* Decodes a received message; NULL when it cannot be read or decoded. */
ProtobufCMessage *qv__rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d);

/* Starts a streaming call and sends its initial metadata; *ok is that send's outcome. QV_EINTERNAL
 * (call ended) when gRPC refused to create the call. */
qv_status qv__rpc_stream_open(qv__rpc *k, const qv__rpc_peer *p, const char *method,
                              int64_t timeout_ms, int *ok, qv_error *err);

/* One request, one answer: *resp (free with protobuf_c_message_free_unpacked) on QV_OK; the
 * server's status otherwise. timeout_ms <= 0 takes the peer's. */
qv_status qv__rpc_unary(const qv__rpc_peer *p, const char *method, int64_t timeout_ms,
                        const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                        ProtobufCMessage **resp, qv_error *err);

#endif

/* The pieces every call of quiverd's gRPC server uses: the completion-queue tag, the codecs, the
 * one batch that finishes a call, and its log line and metrics. */
#ifndef QUIVER_SERVER_CALL_H
#define QUIVER_SERVER_CALL_H

#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <stdatomic.h>

#include <protobuf-c/protobuf-c.h>

#include "quiver/clock.h"
#include "quiver/status.h"
#include "quiver_wire.h" /* qv__wire_pack, qv__to_grpc */

typedef struct qv__tag {
  void (*fn)(void *self, int ok);
  int on_writer; /* run fn on a writer thread, not on the polling thread (server.c) */
  int ok;        /* while queued for a writer */
  struct qv__tag *next;
} qv__tag;

/* The receiving side of a client-streaming call, the first member of its call object: one
 * RECV_MESSAGE outstanding at a time, each completion on `tag` (on a writer thread when
 * tag.on_writer), so the stream's owner gets `fn(owner, ok)`. */
typedef struct qv__stream {
  qv__tag tag;
  grpc_call *call;
  grpc_metadata_array md;
  grpc_byte_buffer *recv; /* the message the last receive brought; NULL at the end of stream */
  double t0;              /* when the call was accepted */
} qv__stream;

void qv__stream_init(qv__stream *st, grpc_call *call, grpc_metadata_array *md,
                     void (*fn)(void *owner, int ok), int on_writer);
/* Posts the next RECV_MESSAGE; 0 when it could not be posted (then end the call). */
int qv__stream_recv_next(qv__stream *st);
/* The message the last receive brought, decoded and checked (NULL with err set when malformed);
 * its buffer is released either way. Only while st->recv != NULL. */
ProtobufCMessage *qv__stream_take(qv__stream *st, const ProtobufCMessageDescriptor *d,
                                  qv_error *err);

/* Calls accepted and not yet finished (call.c). */
extern atomic_int qv__calls_in_flight;

void qv__metrics_call_end(int mi, qv_status st, double t0);
ProtobufCMessage *qv__decode_bytes(const ProtobufCMessageDescriptor *d, const uint8_t *data,
                                   size_t len, qv_error *err);
ProtobufCMessage *qv__decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d,
                             qv_error *err);
int qv__deadline_passed(gpr_timespec deadline);
void qv__finish_call(grpc_call *call, grpc_metadata_array *md, int initial_sent,
                     grpc_byte_buffer *resp, qv_status st, const char *msg);
void qv__log_failure(const char *method, const char *collection, qv_status st, const char *msg);

#endif

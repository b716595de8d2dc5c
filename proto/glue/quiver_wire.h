/* The wire boundary, shared by server/ and clients/c: messages to and from gRPC byte buffers,
 * Quiver's status codes to and from gRPC's (the one place they are mapped: STYLE 7), gRPC status
 * names, metric and device enum conversions. */
#ifndef QUIVER_WIRE_H
#define QUIVER_WIRE_H

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "quiver/status.h"
#include "quiver/types.h"
#include "quiver/v1/retrieval.pb-c.h"

/* QV_METRIC_* -> quiver.v1.Metric. */
Quiver__V1__Metric qv__metric_to_pb(qv_metric m);
/* quiver.v1.Metric -> QV_METRIC_*; returns -1 for METRIC_UNSPECIFIED or an unknown value. */
int qv__metric_from_pb(Quiver__V1__Metric m, qv_metric *out);
/* QV_DEVICE_* <-> quiver.v1.Device; from_pb maps DEVICE_UNSPECIFIED to `dflt` and returns -1
 * for an unknown value. */
Quiver__V1__Device qv__device_to_pb(qv_device d);
int qv__device_from_pb(Quiver__V1__Device d, qv_device dflt, qv_device *out);
/* "INVALID_ARGUMENT" etc.; "UNKNOWN" outside the enum. */
const char *qv__grpc_name(grpc_status_code c);

/* The gRPC status a Quiver status is answered with (what a client should do: retry
 * UNAVAILABLE, not INTERNAL; the table in docs/server.md). */
grpc_status_code qv__to_grpc(qv_status s);
/* The Quiver status a client returns for a gRPC status (OUT_OF_RANGE reads as QV_EINVAL, codes
 * without a counterpart as QV_EINTERNAL). */
qv_status qv__from_grpc(grpc_status_code s);

/* m packed into a new byte buffer (grpc_byte_buffer_destroy it). */
grpc_byte_buffer *qv__wire_pack(const ProtobufCMessage *m);
/* All of bb in one slice (grpc_slice_unref it); 0 when bb cannot be read (compressed with an
 * algorithm this side does not have). */
int qv__wire_slice(grpc_byte_buffer *bb, grpc_slice *out);

#endif

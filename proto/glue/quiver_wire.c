#include "quiver_wire.h"

#include <grpc/byte_buffer_reader.h>

Quiver__V1__Metric qv__metric_to_pb(qv_metric m) {
  switch (m) {
  case QV_METRIC_L2:
    return QUIVER__V1__METRIC__METRIC_L2;
  case QV_METRIC_IP:
    return QUIVER__V1__METRIC__METRIC_IP;
  case QV_METRIC_COSINE:
    return QUIVER__V1__METRIC__METRIC_COSINE;
  }
  return QUIVER__V1__METRIC__METRIC_UNSPECIFIED;
}

int qv__metric_from_pb(Quiver__V1__Metric m, qv_metric *out) {
  switch (m) {
  case QUIVER__V1__METRIC__METRIC_L2:
    *out = QV_METRIC_L2;
    return 0;
  case QUIVER__V1__METRIC__METRIC_IP:
    *out = QV_METRIC_IP;
    return 0;
  case QUIVER__V1__METRIC__METRIC_COSINE:
    *out = QV_METRIC_COSINE;
    return 0;
  default:
    return -1;
  }
}

Quiver__V1__Device qv__device_to_pb(qv_device d) {
  switch (d) {
  case QV_DEVICE_AUTO:
    return QUIVER__V1__DEVICE__DEVICE_AUTO;
  case QV_DEVICE_CPU:
    return QUIVER__V1__DEVICE__DEVICE_CPU;
  case QV_DEVICE_GPU:
    return QUIVER__V1__DEVICE__DEVICE_GPU;
  }
  return QUIVER__V1__DEVICE__DEVICE_UNSPECIFIED;
}

int qv__device_from_pb(Quiver__V1__Device d, qv_device dflt, qv_device *out) {
  switch (d) {
  case QUIVER__V1__DEVICE__DEVICE_UNSPECIFIED:
    *out = dflt;
    return 0;
  case QUIVER__V1__DEVICE__DEVICE_AUTO:
    *out = QV_DEVICE_AUTO;
    return 0;
  case QUIVER__V1__DEVICE__DEVICE_CPU:
    *out = QV_DEVICE_CPU;
    return 0;
  case QUIVER__V1__DEVICE__DEVICE_GPU:
    *out = QV_DEVICE_GPU;
    return 0;
  default:
    return -1;
  }
}

const char *qv__grpc_name(grpc_status_code c) {
  static const char *const names[] = {"OK",
                                      "CANCELLED",
                                      "UNKNOWN",
                                      "INVALID_ARGUMENT",
                                      "DEADLINE_EXCEEDED",
                                      "NOT_FOUND",
                                      "ALREADY_EXISTS",
                                      "PERMISSION_DENIED",
                                      "RESOURCE_EXHAUSTED",
                                      "FAILED_PRECONDITION",
                                      "ABORTED",
                                      "OUT_OF_RANGE",
                                      "UNIMPLEMENTED",
                                      "INTERNAL",
                                      "UNAVAILABLE",
                                      "DATA_LOSS",
                                      "UNAUTHENTICATED"};
  return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "UNKNOWN";
}

grpc_status_code qv__to_grpc(qv_status s) {
  /* No default: the compiler flags a status added without a mapping. */
  switch (s) {
  case QV_OK:
    return GRPC_STATUS_OK;
  case QV_EINVAL:
    return GRPC_STATUS_INVALID_ARGUMENT;
  case QV_ENOTFOUND:
    return GRPC_STATUS_NOT_FOUND;
  case QV_EEXIST:
    return GRPC_STATUS_ALREADY_EXISTS;
  case QV_EPRECONDITION:
    return GRPC_STATUS_FAILED_PRECONDITION;
  case QV_ENOMEM:
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  case QV_EIO:
    return GRPC_STATUS_INTERNAL;
  case QV_ECORRUPT:
    return GRPC_STATUS_DATA_LOSS;
  case QV_EUNSUPPORTED:
    return GRPC_STATUS_UNIMPLEMENTED;
  case QV_EDEADLINE:
    return GRPC_STATUS_DEADLINE_EXCEEDED;
  case QV_ECANCELLED:
    return GRPC_STATUS_CANCELLED;
  case QV_EUNAVAILABLE:
    return GRPC_STATUS_UNAVAILABLE;
  case QV_EINTERNAL:
    return GRPC_STATUS_INTERNAL;
  case QV_EUNAUTHENTICATED:
    return GRPC_STATUS_UNAUTHENTICATED;
  case QV_EPERMISSION:
    return GRPC_STATUS_PERMISSION_DENIED;
  }
  return GRPC_STATUS_INTERNAL;
}

qv_status qv__from_grpc(grpc_status_code s) {
  switch (s) {
  case GRPC_STATUS_OK:
    return QV_OK;
  case GRPC_STATUS_INVALID_ARGUMENT:
  case GRPC_STATUS_OUT_OF_RANGE:
    return QV_EINVAL;
  case GRPC_STATUS_NOT_FOUND:
    return QV_ENOTFOUND;
  case GRPC_STATUS_ALREADY_EXISTS:
    return QV_EEXIST;
  case GRPC_STATUS_FAILED_PRECONDITION:
    return QV_EPRECONDITION;
  case GRPC_STATUS_RESOURCE_EXHAUSTED:
    return QV_ENOMEM;
  case GRPC_STATUS_DEADLINE_EXCEEDED:
    return QV_EDEADLINE;
  case GRPC_STATUS_UNAVAILABLE:
    return QV_EUNAVAILABLE;
  case GRPC_STATUS_UNIMPLEMENTED:
    return QV_EUNSUPPORTED;
  case GRPC_STATUS_CANCELLED:
    return QV_ECANCELLED;
  case GRPC_STATUS_DATA_LOSS:
    return QV_ECORRUPT;
  case GRPC_STATUS_UNAUTHENTICATED:
    return QV_EUNAUTHENTICATED;
  case GRPC_STATUS_PERMISSION_DENIED:
    return QV_EPERMISSION;
  default:
    return QV_EINTERNAL;
  }
}

grpc_byte_buffer *qv__wire_pack(const ProtobufCMessage *m) {
  size_t len = protobuf_c_message_get_packed_size(m);
  grpc_slice s = grpc_slice_malloc(len);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

int qv__wire_slice(grpc_byte_buffer *bb, grpc_slice *out) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb))
    return 0;
  *out = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  return 1;
}

#include "quiver_wire.h"

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

/* Small helpers at the wire boundary, shared by server/ and clients/c: metric enum conversions
 * and gRPC status names. */
#ifndef QUIVER_WIRE_H
#define QUIVER_WIRE_H

#include <grpc/status.h>

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

#endif

#ifndef QUIVER_SERVER_STATUS_MAP_H
#define QUIVER_SERVER_STATUS_MAP_H

#include <grpc/status.h>

#include "quiver/status.h"

/* The one place where Quiver's status codes become gRPC's (STYLE 7). */
grpc_status_code qv__to_grpc(qv_status s);
/* Names: qv__grpc_name in proto/glue/quiver_wire.h. */

#endif

#ifndef QUIVER_SERVER_STATUS_MAP_H
#define QUIVER_SERVER_STATUS_MAP_H

#include <grpc/status.h>

#include "quiver/status.h"

/* The one place where Quiver's status codes become gRPC's (STYLE 7). */
grpc_status_code qv__to_grpc(qv_status s);
/* "INVALID_ARGUMENT" etc. */
const char *qv__grpc_name(grpc_status_code c);

#endif

#include "status_map.h"

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

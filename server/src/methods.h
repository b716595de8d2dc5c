/* The methods quiverd serves: their gRPC paths, kinds, request types and unary handlers. */
#ifndef QUIVER_SERVER_METHODS_H
#define QUIVER_SERVER_METHODS_H

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#include <protobuf-c/protobuf-c.h>

#include "auth.h"
#include "server.h"

typedef enum { K_UNARY, K_CLIENT_STREAM, K_SERVER_STREAM } call_kind;

/* The methods, in qv__method_table order (the table is in methods.c, the handlers in rpc_*.c). */
enum {
  M_SEARCH,
  M_CREATE,
  M_DROP,
  M_LIST,
  M_DESCRIBE,
  M_UPSERT,
  M_DELETE,
  M_BUILD,
  M_HEALTH,
  M_IMPORT,
  M_ROLLOUT,
  M_HEALTH_WATCH,
  M_GET,
  NMETHODS
};

typedef struct method method;
/* deadline: the call's (NULL = none); long handlers check it, and a stop, between steps. */
typedef qv_status (*unary_fn)(qv__server *s, const ProtobufCMessage *req,
                              const gpr_timespec *deadline, grpc_byte_buffer **resp, qv_error *err);
/* Starts a streaming call; payload is the request of a server stream (NULL for a client stream).
 * Takes call and md; the caller frees payload. */
typedef void (*stream_start_fn)(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                                grpc_byte_buffer *payload);

/* One row per method; dispatch and auth read only this (server.c). */
struct method {
  const char *path;
  call_kind kind;
  const ProtobufCMessageDescriptor *req_desc;
  unary_fn fn;           /* K_UNARY */
  stream_start_fn start; /* K_CLIENT_STREAM, K_SERVER_STREAM */
  /* The token role a call needs under --auth-tokens; QV__ROLE_NONE: open to all (health, for
   * probes). */
  qv__role role;
  /* 1: a write — a unary call runs on a writer thread (a stream's steps are placed by its own
   * tags, rpc_upsert.c, rpc_import.c). */
  int writes;
  /* The router role's handlers (router_*.c); NULL: the node's serves both (Health). */
  unary_fn rfn;
  stream_start_fn rstart;
};

extern const method qv__method_table[NMETHODS];

const char *qv__method_short(const method *m);

#endif

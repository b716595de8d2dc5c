/* quiverd's gRPC server: completion queues, polling threads, call state machines, handlers. */
#ifndef QUIVER_SERVER_SERVER_H
#define QUIVER_SERVER_SERVER_H

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>

#include <protobuf-c/protobuf-c.h>

#include "config.h"
#include "registry.h"

typedef struct qv__server qv__server;

struct qv__router;
/* Creates the server, binds cfg->listen, starts the polling threads. *port gets the bound port.
 * router: the fleet router that answers the calls (--role router), or NULL for a node. */
qv_status qv__server_start(qv__server **out, qv__config *cfg, qv__registry *reg,
                           struct qv__router *router, int *port, qv_error *err);
/* The polling threads it runs (--threads, or its default for the role). */
int qv__server_pollers(const qv__server *s);
/* Graceful stop: refuse new calls, cancel builds, let in-flight calls finish within the grace
 * period, then cancel the rest; joins every thread and frees the server. */
void qv__server_stop(qv__server *s);
/* 1 when the accept watchdog found that the listener stopped accepting (quiverd then stops and
 * exits 1); read it before qv__server_stop. */
int qv__server_accept_dead(const qv__server *s);

/* ---- offline calls: the request handling of quiverd without gRPC (fuzz targets, tests) ----
 * A server that only runs calls given to it as bytes: no listener, no threads. */
qv__server *qv__server_offline_new(qv__config *cfg, qv__registry *reg);
void qv__server_offline_free(qv__server *s);
/* The methods, 0 .. qv__server_methods()-1, by gRPC path ("/quiver.v1.Retrieval/Search"). */
int qv__server_methods(void);
const char *qv__server_method_path(int method);
/* Runs one call as a polling thread would: each message decoded and checked as on the wire,
 * then the method's handler (Search without the batcher; BuildIndex and an import's end run on
 * the calling thread). Unary methods and BuildIndex take one message, Upsert and ImportIndex a
 * stream of nmsgs. *resp gets the packed answer (free() its data; none on an error). */
qv_status qv__server_call_offline(qv__server *s, int method, const ProtobufCBinaryData *msgs,
                                  size_t nmsgs, ProtobufCBinaryData *resp, qv_error *err);

#endif

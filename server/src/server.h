/* quiverd's gRPC server: completion queues, polling threads, call state machines, handlers. */
#ifndef QUIVER_SERVER_SERVER_H
#define QUIVER_SERVER_SERVER_H

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "config.h"
#include "registry.h"

typedef struct qv__server qv__server;

/* Creates the server, binds cfg->listen, starts the polling threads. *port gets the bound port. */
qv_status qv__server_start(qv__server **out, qv__config *cfg, qv__registry *reg, int *port,
                           qv_error *err);
/* Graceful stop: refuse new calls, cancel builds, let in-flight calls finish within the grace
 * period, then cancel the rest; joins every thread and frees the server. */
void qv__server_stop(qv__server *s);

/* OpenBLAS (pthreads build; under FAISS's coarse quantizer for batches of 20+ queries and k-means)
 * starts its own threads on every core per call, while the polling threads already search in
 * parallel: searches keep it at `searching` threads; while a build or import runs it may use every
 * core. No-op when the BLAS is not OpenBLAS. */
void qv__blas_threads_init(int searching);

#endif

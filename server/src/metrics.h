/* Prometheus metrics: counters and histograms updated lock-free on the request paths, and a text
 * exposition (format 0.0.4) served over HTTP by libmicrohttpd on --metrics-listen.
 *
 * Names follow Prometheus conventions (quiver_ prefix, _total counters, _seconds / _bytes units):
 *   quiver_requests_total{method,code}            calls answered, by gRPC method and status
 *   quiver_request_duration_seconds{method}       histogram of call latency
 *   quiver_queries_total                          queries searched (a call may carry many)
 *   quiver_builds_total{kind,outcome}             builds and imports: ok | refused | failed
 *   quiver_build_duration_seconds{kind}           histogram
 * plus what the registered collector appends at scrape time (collections, batches, GPU, WAL) and
 * process_* figures from /proc. */
#ifndef QUIVER_SERVER_METRICS_H
#define QUIVER_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "quiver/status.h"

/* A growable text buffer for the exposition. */
typedef struct qv__mbuf {
  char *p;
  size_t len, cap;
  int failed; /* out of memory: the scrape answers 500 */
} qv__mbuf;

void qv__mbuf_printf(qv__mbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Method names (index = method number); the last is used for unknown methods. */
void qv__metrics_init(const char *const *methods, int nmethods);
void qv__metrics_call(int method, grpc_status_code code, double seconds);
void qv__metrics_queries(uint64_t n);
/* kind "build" or "import"; outcome "ok", "refused" (recall floor, budget, too few vectors),
 * "cancelled" or "failed". */
void qv__metrics_build(const char *kind, const char *outcome, double seconds);

/* Called at scrape time to append lines (collections, batches, GPU, WAL). */
typedef void (*qv__metrics_collect_fn)(void *user, qv__mbuf *out);

/* Serves http://LISTEN/metrics; *port gets the bound port. QV_EINVAL (bad address), QV_EIO. */
qv_status qv__metrics_start(const char *listen, qv__metrics_collect_fn fn, void *user, int *port,
                            qv_error *err);
void qv__metrics_stop(void);

/* The whole exposition (tests and the HTTP handler). */
void qv__metrics_render(qv__mbuf *out);

#endif

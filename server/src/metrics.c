/* Prometheus metrics (metrics.h). libmicrohttpd serves them: Debian's libmicrohttpd-dev is a
 * small, well-tested HTTP server library with its own polling thread, so quiverd needs no
 * hand-written HTTP parsing on a port that may face the network. */
#define _GNU_SOURCE
#include "metrics.h"

#include <dirent.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "quiver_wire.h"

#define MAX_METHODS 16
#define NCODES 17
static const double kLatency[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                  0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
enum { NLAT = sizeof kLatency / sizeof kLatency[0] };
static const double kBuild[] = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
enum { NBUILD = sizeof kBuild / sizeof kBuild[0] };
static const char *const kKinds[2] = {"build", "import"};
static const char *const kOutcomes[4] = {"ok", "refused", "cancelled", "failed"};

typedef struct hist {
  atomic_uint_fast64_t bucket[NLAT + 1]; /* per bucket (not cumulative); last = +Inf */
  atomic_uint_fast64_t sum_ns;
} hist;

static struct {
  const char *const *methods;
  int n;
  atomic_uint_fast64_t calls[MAX_METHODS][NCODES];
  hist lat[MAX_METHODS];
  atomic_uint_fast64_t queries;
  atomic_uint_fast64_t builds[2][4];
  atomic_uint_fast64_t build_bucket[2][NBUILD + 1];
  atomic_uint_fast64_t build_sum_ms[2];
  double start_time;
  struct MHD_Daemon *d;
  qv__metrics_collect_fn collect;
  void *user;
} M;

void qv__mbuf_printf(qv__mbuf *b, const char *fmt, ...) {
  if (b->failed)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if (b->p != NULL && (size_t)n < room) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 16384;
    while (cap - b->len <= (size_t)n)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
      b->failed = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
}

void qv__metrics_init(const char *const *methods, int nmethods) {
  M.methods = methods;
  M.n = nmethods < MAX_METHODS ? nmethods : MAX_METHODS;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  M.start_time = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void qv__metrics_call(int method, grpc_status_code code, double seconds) {
  if (method < 0 || method >= M.n)
    method = M.n - 1;
  if (method < 0)
    return;
  int c = (int)code >= 0 && (int)code < NCODES ? (int)code : GRPC_STATUS_UNKNOWN;
  atomic_fetch_add_explicit(&M.calls[method][c], 1, memory_order_relaxed);
  int b = 0;
  while (b < NLAT && seconds > kLatency[b])
    b++;
  atomic_fetch_add_explicit(&M.lat[method].bucket[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&M.lat[method].sum_ns, (uint64_t)(seconds > 0 ? seconds * 1e9 : 0),
                            memory_order_relaxed);
}

void qv__metrics_queries(uint64_t n) {
  atomic_fetch_add_explicit(&M.queries, n, memory_order_relaxed);
}

void qv__metrics_build(const char *kind, const char *outcome, double seconds) {
  int k = strcmp(kind, "import") == 0, o = 3;
  for (int i = 0; i < 4; i++)
    if (strcmp(outcome, kOutcomes[i]) == 0)
      o = i;
  atomic_fetch_add(&M.builds[k][o], 1);
  int b = 0;
  while (b < NBUILD && seconds > kBuild[b])
    b++;
  atomic_fetch_add(&M.build_bucket[k][b], 1);
  atomic_fetch_add(&M.build_sum_ms[k], (uint64_t)(seconds * 1e3));
}

static void process_metrics(qv__mbuf *o) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
               (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
  long pages_total = 0, pages_res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &pages_total, &pages_res) != 2)
      pages_total = pages_res = 0;
    fclose(f);
  }
  long page = sysconf(_SC_PAGESIZE);
  int fds = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
      fds += e->d_name[0] != '.';
    closedir(d);
    fds--; /* the one opendir holds */
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  qv__mbuf_printf(o,
                  "# HELP process_cpu_seconds_total User and system CPU time.\n"
                  "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.3f\n"
                  "# HELP process_resident_memory_bytes Resident memory.\n"
                  "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n"
                  "# HELP process_virtual_memory_bytes Virtual memory.\n"
                  "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %ld\n"
                  "# HELP process_open_fds Open file descriptors.\n"
                  "# TYPE process_open_fds gauge\nprocess_open_fds %d\n"
                  "# HELP process_max_fds The file descriptor limit.\n"
                  "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n"
                  "# HELP process_start_time_seconds Start time since the Unix epoch.\n"
                  "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n",
                  cpu, pages_res * page, pages_total * page, fds, (unsigned long long)rl.rlim_cur,
                  M.start_time);
}

void qv__metrics_render(qv__mbuf *o) {
  qv__mbuf_printf(o, "# HELP quiver_requests_total gRPC calls answered, by method and status "
                     "code.\n# TYPE quiver_requests_total counter\n");
  for (int m = 0; m < M.n; m++)
    for (int c = 0; c < NCODES; c++) {
      uint64_t v = atomic_load_explicit(&M.calls[m][c], memory_order_relaxed);
      if (v > 0 || (c == 0 && m < M.n - 1)) /* OK rows always; others once they happen */
        qv__mbuf_printf(o, "quiver_requests_total{method=\"%s\",code=\"%s\"} %llu\n", M.methods[m],
                        qv__grpc_name((grpc_status_code)c), (unsigned long long)v);
    }
  qv__mbuf_printf(o, "# HELP quiver_request_duration_seconds Time from a call's arrival to its "
                     "answer.\n# TYPE quiver_request_duration_seconds histogram\n");
  for (int m = 0; m < M.n - 1; m++) {
    uint64_t cum = 0;
    for (int b = 0; b <= NLAT; b++) {
      cum += atomic_load_explicit(&M.lat[m].bucket[b], memory_order_relaxed);
      if (b < NLAT)
        qv__mbuf_printf(o, "quiver_request_duration_seconds_bucket{method=\"%s\",le=\"%g\"} %llu\n",
                        M.methods[m], kLatency[b], (unsigned long long)cum);
      else
        qv__mbuf_printf(o,
                        "quiver_request_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n"
                        "quiver_request_duration_seconds_sum{method=\"%s\"} %.6f\n"
                        "quiver_request_duration_seconds_count{method=\"%s\"} %llu\n",
                        M.methods[m], (unsigned long long)cum, M.methods[m],
                        (double)atomic_load(&M.lat[m].sum_ns) * 1e-9, M.methods[m],
                        (unsigned long long)cum);
    }
  }
  qv__mbuf_printf(o,
                  "# HELP quiver_queries_total Queries searched (a call may carry many).\n"
                  "# TYPE quiver_queries_total counter\nquiver_queries_total %llu\n",
                  (unsigned long long)atomic_load(&M.queries));
  qv__mbuf_printf(o, "# HELP quiver_builds_total Index builds and imports by outcome.\n"
                     "# TYPE quiver_builds_total counter\n");
  for (int k = 0; k < 2; k++)
    for (int r = 0; r < 4; r++)
      qv__mbuf_printf(o, "quiver_builds_total{kind=\"%s\",outcome=\"%s\"} %llu\n", kKinds[k],
                      kOutcomes[r], (unsigned long long)atomic_load(&M.builds[k][r]));
  qv__mbuf_printf(o, "# HELP quiver_build_duration_seconds Duration of builds and imports.\n"
                     "# TYPE quiver_build_duration_seconds histogram\n");
  for (int k = 0; k < 2; k++) {
    uint64_t cum = 0;
    for (int b = 0; b <= NBUILD; b++) {
      cum += atomic_load(&M.build_bucket[k][b]);
      if (b < NBUILD)
        qv__mbuf_printf(o, "quiver_build_duration_seconds_bucket{kind=\"%s\",le=\"%g\"} %llu\n",
                        kKinds[k], kBuild[b], (unsigned long long)cum);
    }
    qv__mbuf_printf(o,
                    "quiver_build_duration_seconds_bucket{kind=\"%s\",le=\"+Inf\"} %llu\n"
                    "quiver_build_duration_seconds_sum{kind=\"%s\"} %.3f\n"
                    "quiver_build_duration_seconds_count{kind=\"%s\"} %llu\n",
                    kKinds[k], (unsigned long long)cum, kKinds[k],
                    (double)atomic_load(&M.build_sum_ms[k]) * 1e-3, kKinds[k],
                    (unsigned long long)cum);
  }
  if (M.collect != NULL)
    M.collect(M.user, o);
  process_metrics(o);
}

static enum MHD_Result on_http(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **state) {
  (void)cls, (void)version, (void)upload, (void)upload_size, (void)state;
  struct MHD_Response *r;
  unsigned status;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    static const char msg[] = "only GET /metrics\n";
    r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
  } else if (strcmp(url, "/metrics") != 0) {
    static const char msg[] = "not found: metrics are at /metrics\n";
    r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
    status = MHD_HTTP_NOT_FOUND;
  } else {
    qv__mbuf b = {0};
    qv__metrics_render(&b);
    if (b.failed) {
      free(b.p);
      static const char msg[] = "out of memory\n";
      r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
      status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    } else {
      r = MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_FREE);
      MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
      status = MHD_HTTP_OK;
    }
  }
  if (r == NULL)
    return MHD_NO;
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

qv_status qv__metrics_start(const char *listen, qv__metrics_collect_fn fn, void *user, int *port,
                            qv_error *err) {
  char host[256];
  const char *colon = strrchr(listen, ':');
  if (colon == NULL || colon == listen || (size_t)(colon - listen) >= sizeof host)
    return qv_error_set(err, QV_EINVAL, "--metrics-listen '%s' is not HOST:PORT", listen);
  memcpy(host, listen, (size_t)(colon - listen));
  host[colon - listen] = '\0';
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = getaddrinfo(host, colon + 1, &hints, &ai);
  if (rc != 0)
    return qv_error_set(err, QV_EINVAL, "--metrics-listen '%s': %s", listen, gai_strerror(rc));
  M.collect = fn;
  M.user = user;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  if (ai->ai_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  M.d = MHD_start_daemon(flags, 0, NULL, NULL, on_http, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)10, MHD_OPTION_END);
  freeaddrinfo(ai);
  if (M.d == NULL)
    return qv_error_set(err, QV_EIO, "--metrics-listen %s: cannot listen (address in use?)",
                        listen);
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(M.d, MHD_DAEMON_INFO_BIND_PORT);
  *port = info ? (int)info->port : 0;
  return QV_OK;
}

void qv__metrics_stop(void) {
  if (M.d != NULL)
    MHD_stop_daemon(M.d);
  M.d = NULL;
}

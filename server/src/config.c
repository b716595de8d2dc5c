#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OPT_STR, OPT_INT, OPT_FLAG } opt_type;

typedef struct opt {
  const char *name; /* --name */
  const char *env;  /* QUIVER_... */
  opt_type type;
  int64_t min, max;
  const char *def;
  size_t off, size;
  const char *help;
} opt;

#define S(f) offsetof(qv__config, f), sizeof(((qv__config *)0)->f)

static const opt kOpts[] = {
    {"listen", "QUIVER_LISTEN", OPT_STR, 0, 0, "127.0.0.1:7070", S(listen),
     "address to serve gRPC on (host:port; port 0 picks a free one)"},
    {"data-dir", "QUIVER_DATA_DIR", OPT_STR, 0, 0, "./quiver-data", S(data_dir),
     "where collections persist; reopened at start"},
    {"threads", "QUIVER_THREADS", OPT_INT, 0, 256, "0", S(threads),
     "gRPC polling threads (0 = number of cores)"},
    {"max-message-mb", "QUIVER_MAX_MESSAGE_MB", OPT_INT, 1, 2047, "64", S(max_message_mb),
     "largest request message accepted, MiB"},
    {"accept-check-s", "QUIVER_ACCEPT_CHECK_S", OPT_INT, 0, 3600, "10", S(accept_check_s),
     "probe the listener every S seconds; 3 unanswered probes stop quiverd with exit 1 (gRPC "
     "stops accepting after running out of descriptors); 0 = off"},
    {"grpc-memory-mb", "QUIVER_GRPC_MEMORY_MB", OPT_INT, 0, 1048576, "1024", S(grpc_memory_mb),
     "memory gRPC may use for buffers of all connections (a resource quota), MiB; 0 = unbounded"},
    {"max-k", "QUIVER_MAX_K", OPT_INT, 1, 65536, "1024", S(max_k), "largest k a search may ask"},
    {"max-candidates", "QUIVER_MAX_CANDIDATES", OPT_INT, 1, 65536, "4096", S(max_candidates),
     "largest rerank.candidates (k') a search may ask"},
    {"max-search-gwork", "QUIVER_MAX_SEARCH_GWORK", OPT_INT, 0, 1000000, "100", S(max_search_gwork),
     "most work one search may ask, in G multiply-adds (queries x compared vectors x dim, with "
     "the rerank stage); 0 = unbounded"},
    {"max-queries", "QUIVER_MAX_QUERIES", OPT_INT, 1, 1000000, "16384", S(max_queries),
     "most queries in one Search request"},
    {"batch", "QUIVER_BATCH", OPT_STR, 0, 0, "on", S(batch),
     "coalesce concurrent searches of a collection into one index search: on | off"},
    {"batch-max-queries", "QUIVER_BATCH_MAX_QUERIES", OPT_INT, 1, 65536, "256",
     S(batch_max_queries), "most queries in one coalesced index search"},
    {"batch-wait-us", "QUIVER_BATCH_WAIT_US", OPT_INT, 0, 1000000, "0", S(batch_wait_us),
     "how long a batch may wait for more searches once one is queued, µs; a timer thread of the "
     "batcher leads it then, polling threads never wait (0 = never)"},
    {"batch-leaders", "QUIVER_BATCH_LEADERS", OPT_INT, 0, 256, "0", S(batch_leaders),
     "index searches of one collection running at once (0 = the polling threads' count); a "
     "search that finds them all busy is queued for the next batch. With the default and no "
     "--batch-wait-us a polling thread always finds a free slot, so searches run at once and are "
     "not coalesced (on the CPU coalescing did not pay, docs/performance.md); 1 coalesces "
     "concurrent searches, the setting for a GPU"},
    {"omp-threads", "QUIVER_OMP_THREADS", OPT_INT, 1, 256, "1", S(omp_threads),
     "OpenMP threads FAISS uses inside one search"},
    {"shutdown-grace-ms", "QUIVER_SHUTDOWN_GRACE_MS", OPT_INT, 0, 600000, "5000",
     S(shutdown_grace_ms), "on SIGTERM/SIGINT, how long in-flight calls may finish"},
    {"device", "QUIVER_DEVICE", OPT_STR, 0, 0, "auto", S(device),
     "where new collections serve searches: auto | cpu | gpu (CreateCollection may override)"},
    {"gpu-memory-mb", "QUIVER_GPU_MEMORY_MB", OPT_INT, 0, 16777216, "0", S(gpu_memory_mb),
     "GPU memory per device for collections' indexes, MiB (0 = 80% of what is free at start)"},
    {"gpu-temp-mb", "QUIVER_GPU_TEMP_MB", OPT_INT, 0, 1048576, "0", S(gpu_temp_mb),
     "FAISS scratch memory per device, MiB (0 = FAISS's default)"},
    {"gpu-fallback", "QUIVER_GPU_FALLBACK", OPT_STR, 0, 0, "cpu", S(gpu_fallback),
     "a collection asking for a GPU that cannot have one: cpu (serve from the CPU, log a warning) "
     "| error (refuse with RESOURCE_EXHAUSTED / FAILED_PRECONDITION)"},
    {"wal-sync", "QUIVER_WAL_SYNC", OPT_STR, 0, 0, "always", S(wal_sync),
     "write-ahead log: always (fdatasync before each acknowledgement) | interval=MS (at most "
     "every MS ms; a machine crash may lose the last MS ms of acknowledged writes)"},
    {"wal-snapshot-mb", "QUIVER_WAL_SNAPSHOT_MB", OPT_INT, 1, 1048576, "256", S(wal_snapshot_mb),
     "save a snapshot (and empty the log) when a collection's write-ahead log passes this, MiB"},
    {"keep-versions", "QUIVER_KEEP_VERSIONS", OPT_INT, 1, 100, "2", S(keep_versions),
     "snapshot versions kept per collection (the newest, then fallbacks used when it is damaged)"},
    {"memory-budget-mb", "QUIVER_MEMORY_BUDGET_MB", OPT_INT, 0, 1073741824, "0",
     S(memory_budget_mb),
     "host memory all collections may hold, MiB; a build or import that would pass it (both "
     "indexes are resident during the swap) is refused with RESOURCE_EXHAUSTED (0 = no limit)"},
    {"import-root", "QUIVER_IMPORT_ROOT", OPT_STR, 0, 0, "", S(import_root),
     "directory under which ImportIndex may load server-side index directories (empty = off)"},
    {"import-min-free-mb", "QUIVER_IMPORT_MIN_FREE_MB", OPT_INT, 0, 1073741824, "512",
     S(import_min_free_mb),
     "a streamed ImportIndex is refused (RESOURCE_EXHAUSTED) before it leaves less than this "
     "free on the data directory's disk, MiB, which the other collections' logs and snapshots "
     "need"},
    {"log-level", "QUIVER_LOG_LEVEL", OPT_STR, 0, 0, "info", S(log_level),
     "debug | info | warn | error"},
    {"log-format", "QUIVER_LOG_FORMAT", OPT_STR, 0, 0, "text", S(log_format),
     "text (TIME LEVEL message) | json (one JSON object per line) | logfmt (key=value)"},
    {"slow-query-ms", "QUIVER_SLOW_QUERY_MS", OPT_INT, 0, 3600000, "0", S(slow_query_ms),
     "log every Search slower than this, ms (0 = off)"},
    {"metrics-listen", "QUIVER_METRICS_LISTEN", OPT_STR, 0, 0, "", S(metrics_listen),
     "serve Prometheus metrics over HTTP at host:port/metrics (empty = off)"},
    {"tls-cert", "QUIVER_TLS_CERT", OPT_STR, 0, 0, "", S(tls_cert),
     "PEM certificate chain of the server: serve TLS (with --tls-key)"},
    {"tls-key", "QUIVER_TLS_KEY", OPT_STR, 0, 0, "", S(tls_key), "PEM private key of --tls-cert"},
    {"tls-client-ca", "QUIVER_TLS_CLIENT_CA", OPT_STR, 0, 0, "", S(tls_client_ca),
     "PEM CA bundle: require and verify client certificates (mutual TLS)"},
    {"auth-tokens", "QUIVER_AUTH_TOKENS", OPT_STR, 0, 0, "", S(auth_tokens),
     "file of 'ROLE TOKEN' lines (read | admin): calls need 'authorization: Bearer TOKEN'; "
     "health stays open (empty = no auth)"},
    {"demo", "QUIVER_DEMO", OPT_FLAG, 0, 1, "0", S(demo),
     "create and build the collection 'demo' on first start"},
    {"demo-data", "QUIVER_DEMO_DATA", OPT_STR, 0, 0, "../shared/data/sift5k/sift5k", S(demo_data),
     "data set prefix for --demo (PREFIX_base.fvecs; generated vectors when absent)"},
    {"port-file", "QUIVER_PORT_FILE", OPT_STR, 0, 0, "", S(port_file),
     "write the bound port to this file once serving"},
    {"cluster", "QUIVER_CLUSTER", OPT_STR, 0, 0, "", S(cluster),
     "cluster mode: etcd=HOST:PORT[,HOST:PORT...][,nats=nats://HOST:PORT...]: register this node "
     "in etcd with a lease (empty = a single node)"},
    {"node-id", "QUIVER_NODE_ID", OPT_STR, 0, 0, "", S(node_id),
     "this node's id in the cluster, [A-Za-z0-9_.-]{1,63} (empty = the host name)"},
    {"advertise", "QUIVER_ADVERTISE", OPT_STR, 0, 0, "", S(advertise),
     "host:port routers reach this node at (empty = --listen with the bound port)"},
    {"lease-s", "QUIVER_LEASE_S", OPT_INT, 1, 3600, "5", S(lease_s),
     "the membership lease in etcd, s: a node that dies leaves the cluster this long after"},
    {"role", "QUIVER_ROLE", OPT_STR, 0, 0, "node", S(role),
     "node | router: with --cluster, a shard server or a router of the fleet (docs/cluster.md)"},
    {"fanout-extra-k", "QUIVER_FANOUT_EXTRA_K", OPT_INT, 0, 65536, "0", S(fanout_extra_k),
     "router: each shard answers k + this many before the merge"},
    {"hedge-ms", "QUIVER_HEDGE_MS", OPT_INT, 0, 600000, "50", S(hedge_ms),
     "router: a shard not answering this long is asked on another replica too (0 = never)"},
    {"map-poll-ms", "QUIVER_MAP_POLL_MS", OPT_INT, 20, 60000, "200", S(map_poll_ms),
     "fleet: how often the shard map and assignments are read from etcd, ms"},
    {"max-lag", "QUIVER_MAX_LAG", OPT_INT, 0, 1000000000, "1000", S(max_lag),
     "shard server: a replica is in-sync (searched) while at most this many log records behind"},
    {"stream-replicas", "QUIVER_STREAM_REPLICAS", OPT_INT, 1, 5, "3", S(stream_replicas),
     "router: JetStream replicas of each shard's write log (at most the NATS servers)"},
};
enum { NOPTS = sizeof kOpts / sizeof kOpts[0] };

static int set(qv__config *c, const opt *o, const char *v, const char *from) {
  char *slot = (char *)c + o->off;
  if (o->type == OPT_STR) {
    if (strlen(v) >= o->size) {
      fprintf(stderr, "quiverd: --%s (from %s) is too long (at most %zu characters)\n", o->name,
              from, o->size - 1);
      return -1;
    }
    memcpy(slot, v, strlen(v) + 1);
    return 0;
  }
  if (o->type == OPT_FLAG && (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")))
    v = "1";
  if (o->type == OPT_FLAG && (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off")))
    v = "0";
  errno = 0;
  char *end;
  long long x = strtoll(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || x < o->min || x > o->max) {
    fprintf(stderr, "quiverd: --%s (from %s) must be an integer in %lld..%lld, not '%s'\n", o->name,
            from, (long long)o->min, (long long)o->max, v);
    return -1;
  }
  *(int64_t *)(void *)slot = x;
  return 0;
}

static void usage(FILE *f) {
  fprintf(f, "usage: quiverd [options]\n\nOptions (flag, environment variable, default):\n");
  for (int i = 0; i < NOPTS; i++)
    fprintf(f, "  --%-20s %-26s %s\n  %22s %s\n", kOpts[i].name, kOpts[i].env,
            kOpts[i].type == OPT_FLAG ? "(flag)" : kOpts[i].def, "", kOpts[i].help);
}

int qv__config_load(qv__config *c, int argc, char **argv) {
  memset(c, 0, sizeof *c);
  for (int i = 0; i < NOPTS; i++)
    if (set(c, &kOpts[i], kOpts[i].def, "default") != 0)
      return -1;
  for (int i = 0; i < NOPTS; i++) {
    const char *v = getenv(kOpts[i].env);
    if (v != NULL && *v != '\0' && set(c, &kOpts[i], v, kOpts[i].env) != 0)
      return -1;
  }
  struct option lo[NOPTS + 2];
  for (int i = 0; i < NOPTS; i++) {
    lo[i].name = kOpts[i].name;
    lo[i].has_arg = kOpts[i].type == OPT_FLAG ? no_argument : required_argument;
    lo[i].flag = NULL;
    lo[i].val = 1000 + i;
  }
  lo[NOPTS] = (struct option){"help", no_argument, NULL, 'h'};
  lo[NOPTS + 1] = (struct option){0, 0, 0, 0};
  optind = 1;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    if (ch == 'h') {
      usage(stdout);
      return 1;
    }
    if (ch < 1000 || ch >= 1000 + NOPTS) {
      usage(stderr);
      return -1;
    }
    const opt *o = &kOpts[ch - 1000];
    if (set(c, o, o->type == OPT_FLAG ? "1" : optarg, "the command line") != 0)
      return -1;
  }
  if (optind < argc) {
    fprintf(stderr, "quiverd: unexpected argument '%s' (see --help)\n", argv[optind]);
    return -1;
  }
  return 0;
}

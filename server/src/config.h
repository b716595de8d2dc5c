/* Server options: one table (name, environment variable, type, bounds, default, slot). Flags win
 * over the environment, which wins over defaults. Only server/ reads flags and environment. */
#ifndef QUIVER_SERVER_CONFIG_H
#define QUIVER_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct qv__config {
  char listen[256];
  char data_dir[1024];
  int64_t threads;        /* polling threads; 0 = cores */
  int64_t max_message_mb; /* max receive message size, MiB */
  int64_t grpc_memory_mb; /* gRPC's resource quota, MiB; 0 = none */
  int64_t accept_check_s; /* the accept watchdog's period; 0 = off */
  int64_t max_k;
  int64_t max_candidates;    /* rerank k' */
  int64_t max_search_gwork;  /* admission: G multiply-adds per search; 0 = unbounded */
  int64_t max_queries;       /* queries per request */
  int64_t omp_threads;       /* FAISS OpenMP threads per search */
  char batch[8];             /* on | off */
  int64_t batch_max_queries; /* per coalesced search */
  int64_t batch_wait_us;     /* linger for more, 0 = never */
  int64_t batch_leaders;     /* batches of one collection at once, 0 = polling threads */
  int64_t shutdown_grace_ms;
  char log_level[16];
  char log_format[16];   /* text | json | logfmt */
  int64_t slow_query_ms; /* 0 = off */
  char metrics_listen[256];
  char tls_cert[1024], tls_key[1024], tls_client_ca[1024];
  char auth_tokens[1024];
  char wal_sync[32];          /* always | interval=MS */
  int64_t wal_snapshot_mb;    /* snapshot when a log passes this */
  int64_t keep_versions;      /* snapshot versions kept per collection */
  int64_t memory_budget_mb;   /* host memory for collections, 0 = unlimited */
  char import_root[1024];     /* server-side ImportIndex paths must lie under it; "" = off */
  int64_t import_min_free_mb; /* a streamed import leaves at least this free on the data disk */
  char device[8];             /* auto | cpu | gpu: default for new collections */
  int64_t gpu_memory_mb;      /* per-device budget, 0 = 80% of free */
  int64_t gpu_temp_mb;        /* FAISS scratch per device, 0 = default */
  char gpu_fallback[8];       /* cpu | error */
  int64_t demo;               /* 1: create the demo collection on first start */
  char demo_data[1024];       /* prefix of the demo data set (PREFIX_base.fvecs) */
  char port_file[1024];       /* where to write the bound port (tests) */
  char cluster[1024];         /* "etcd=HOST:PORT,...[,nats=nats://HOST:PORT,...]"; "" = one node */
  char node_id[64];           /* this node's name in the cluster; "" = the host name */
  char advertise[256];        /* the address routers reach this node at; "" = --listen's */
  int64_t lease_s;            /* the membership lease: gone this long after a crash */
  char role[16];              /* node | router */
  int64_t fanout_extra_k;     /* router: each shard answers k + this many */
  int64_t hedge_ms;           /* router: a shard's second try after this long; 0 = off */
  int64_t map_poll_ms;        /* fleet: how often the map is read from etcd */
  int64_t max_lag;            /* shard server: in-sync while this few log records behind */
  int64_t stream_replicas;    /* router: JetStream replicas of a new collection's logs */
} qv__config;

/* Fills defaults, then environment, then argv. Returns 0 on success, 1 when --help was printed
 * (exit 0), -1 on a bad option (message printed; exit 2). */
int qv__config_load(qv__config *c, int argc, char **argv);

#endif

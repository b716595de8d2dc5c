/* What the router's files share (router.c: the map, peers, logs, controller; router_search.c:
 * the fan-out; router_rpc.c: writes and admin). */
#ifndef QUIVER_SERVER_ROUTER_INTERNAL_H
#define QUIVER_SERVER_ROUTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "fleet.h"
#include "member.h"
#include "metrics.h"
#include "quiver/etcd.h"
#include "quiver/jslog.h"
#include "router.h"
#include "server_internal.h"

/* The fan-out latency histogram's upper bounds, ms. */
enum { QV__FANOUT_BUCKETS = 12 };
extern const double qv__fanout_bounds_ms[QV__FANOUT_BUCKETS];

/* A shard server as the router talks to it: one channel, and the calls outstanding on it (the
 * fan-out picks the replica with the fewest). Lives as long as the router. */
typedef struct qv__rpeer {
  char addr[256];
  grpc_channel *ch;
  atomic_int outstanding;
} qv__rpeer;

typedef struct qv__rrep {
  char node[64];
  qv__frep r;
  qv__rpeer *peer;
} qv__rrep;

typedef struct qv__rshard {
  qv__rrep *reps;
  size_t n;
} qv__rshard;

typedef struct qv__rcoll {
  qv__fcoll c;
  qv__rshard *shards; /* c.shards of them */
  qv__froll ro;       /* its rollout (docs/rollout.md), when have_ro */
  int have_ro;
} qv__rcoll;

/* What a router reports of the versions its queries are pinned to (/quiver/pins/<router>): per
 * collection the pointer its map shows and the oldest version a query in flight holds. */
typedef struct qv__rpin {
  char router[64];
  char name[QV__FLEET_NAME_MAX + 1];
  uint64_t seen, oldest;
} qv__rpin;

typedef struct qv__rnode {
  char id[64];
  char addr[256];
  uint32_t assigned;
} qv__rnode;

/* One reading of etcd: immutable once published; readers hold a reference. */
typedef struct qv__rmap {
  atomic_int refs;
  qv__rcoll *colls; /* sorted by name */
  size_t ncolls;
  qv__rnode *nodes; /* sorted by id */
  size_t nnodes;
  char (*routers)[64]; /* the live routers' ids */
  size_t nrouters;
  qv__rpin *pins;
  size_t npins;
  double read_at; /* qv_monotonic_s() of the reading */
  int64_t rev;    /* etcd's revision when its collections were read */
} qv__rmap;

/* A shard's write log as the router appends to it, and the last sequence it acknowledged (a
 * search prefers replicas that applied it: a client reads its own acknowledged writes). */
typedef struct qv__rlog {
  char stream[64];
  qv_jslog *log;
  atomic_uint_fast64_t acked;
  struct qv__rlog *next;
} qv__rlog;

struct qv__router {
  const qv__config *cfg;
  char id[64], etcd_eps[1024], nats[1024];
  qv_etcd *etcd;
  qv__member *member;
  pthread_mutex_t mu; /* map, stop, member */
  pthread_cond_t cv;
  qv__rmap *map;
  int stop;
  pthread_t thr;
  pthread_mutex_t pmu; /* peers */
  qv__rpeer **peers;
  size_t npeers, pcap;
  pthread_mutex_t lmu; /* logs */
  qv__rlog *logs;
  uint64_t nonce; /* makes this router's write ids unique across its restarts */
  atomic_uint_fast64_t writes;
  atomic_int controller; /* 1 while this router holds the controller key */
  /* Queries in flight per (collection, data version), for the pins report. */
  pthread_mutex_t pin_mu;
  struct qv__inflight {
    char name[QV__FLEET_NAME_MAX + 1];
    uint64_t version;
    int64_t n;
  } * inflight;
  size_t ninflight, icap;
  char *pins_report; /* the JSON last put */
  int64_t pins_lease;
  /* metrics */
  atomic_uint_fast64_t fanouts, hedges, retries, partials, shard_failures;
  atomic_uint_fast64_t fanout_hist[QV__FANOUT_BUCKETS + 1]; /* the last: above every bound */
  atomic_uint_fast64_t fanout_us_sum;
};

/* What one CollectionInfo of a fleet collection points at (router_rpc.c). */
typedef struct info_buf {
  Quiver__V1__ReplicaInfo *reps;
  Quiver__V1__ReplicaInfo **ptrs;
  char spec[128];
  Quiver__V1__AttributeField attrs[QV_MAX_ATTRS];
  Quiver__V1__AttributeField *attr_ptrs[QV_MAX_ATTRS];
} info_buf;
qv_status qv__rt_fill_info(const qv__rcoll *c, Quiver__V1__CollectionInfo *info, info_buf *b,
                           qv_error *err);
void qv__rt_info_free(info_buf *b);

#define QV__FLEET_PINS "/quiver/pins/" /* <router> = {"<name>": {"seen": V, "oldest": V}} */

/* A query pinned to `version` of collection `name` begins (+1) or ends (-1). */
void qv__router_pin(qv__router *r, const char *name, uint64_t version, int delta);
/* Every shard's ready replicas, the recall floor, the flip, the hold and the release of the
 * rollouts in map m: one controller turn (router_rollout.c). */
void qv__rollout_turn(qv__router *r, const qv__rmap *m);
/* This router's pins report, put when it changed (router_rollout.c). */
void qv__pins_report(qv__router *r, const qv__rmap *m);

/* Counts one fan-out of `seconds` in the latency histogram. */
void qv__router_fanout_observe(qv__router *r, double seconds);
/* The router's series for a scrape (metrics_collect.c). */
void qv__router_metrics(qv__router *r, qv__mbuf *o);

/* The current map, referenced (never NULL once the router started; maybe empty). */
qv__rmap *qv__router_map(qv__router *r);
void qv__rmap_put(qv__rmap *m);
/* The current map, read again first when `name` is not in it (a collection created through
 * another router since the last reading). */
qv__rmap *qv__router_map_for(qv__router *r, const char *name);
const qv__rcoll *qv__rmap_find(const qv__rmap *m, const char *name);
/* Reads etcd now and publishes the result (admin calls that must see their own change). */
qv_status qv__router_refresh(qv__router *r, qv_error *err);
/* The log of a collection's shard, opened on first use. */
qv_status qv__router_log(qv__router *r, const qv__fcoll *c, uint32_t shard, qv__rlog **out,
                         qv_error *err);
/* Forgets (and deletes) the logs of a dropped collection. */
qv_status qv__router_drop_logs(qv__router *r, const qv__fcoll *c, qv_error *err);

/* The handlers (router_search.c, router_rpc.c): the node's method signatures. */
qv_status qv__rt_search(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                        grpc_byte_buffer **resp, qv_error *err);
qv_status qv__rt_get(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                     grpc_byte_buffer **resp, qv_error *err);
qv_status qv__rt_create(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                        grpc_byte_buffer **resp, qv_error *err);
qv_status qv__rt_drop(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                      grpc_byte_buffer **resp, qv_error *err);
qv_status qv__rt_list(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                      grpc_byte_buffer **resp, qv_error *err);
qv_status qv__rt_describe(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                          grpc_byte_buffer **resp, qv_error *err);
qv_status qv__rt_delete(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                        grpc_byte_buffer **resp, qv_error *err);
void qv__rt_start_upsert(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                         grpc_byte_buffer *payload);
void qv__rt_start_build(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                        grpc_byte_buffer *payload);
qv_status qv__rt_rollout(qv__server *s, const ProtobufCMessage *m, const gpr_timespec *deadline,
                         grpc_byte_buffer **resp, qv_error *err);
void qv__rt_start_import(qv__server *s, grpc_call *call, grpc_metadata_array *md,
                         grpc_byte_buffer *payload);

#endif

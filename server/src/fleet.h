/* What the fleet's parts share (shard servers, routers, the controller): the key space in etcd,
 * the records stored there (JSON, jansson), the names a shard's replica and write log get, and
 * the hash that places an id on its shard. docs/cluster.md documents all of it. */
#ifndef QUIVER_SERVER_FLEET_H
#define QUIVER_SERVER_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/attrs.h"
#include "quiver/status.h"

/* The key space. A collection's record lives as long as the collection; an assignment (the
 * controller's) says which node holds a replica of which shard; a replica's report (its node's,
 * on that node's lease) says how far it is. */
#define QV__FLEET_NODES "/quiver/nodes/"             /* <node> = {"id","addr","pid"} */
#define QV__FLEET_ROUTERS "/quiver/routers/"         /* <router> = {"id","addr","pid"} */
#define QV__FLEET_COLLECTIONS "/quiver/collections/" /* <name> = qv__fcoll */
#define QV__FLEET_ASSIGN "/quiver/assign/"           /* <node>/<name>/<shard> = "" */
#define QV__FLEET_REPLICAS "/quiver/replicas/"       /* <name>/<shard>/<node> = qv__frep */
#define QV__FLEET_CONTROLLER "/quiver/controller"    /* the elected controller's router id */
#define QV__FLEET_ROLLOUTS "/quiver/rollouts/"       /* <name> = qv__froll (docs/rollout.md) */

enum { QV__FLEET_MAX_SHARDS = 256, QV__FLEET_MAX_REPLICAS = 5 };
/* A cluster collection's name leaves room for the ".shardNNN" of its replicas' local names. */
enum { QV__FLEET_NAME_MAX = 55 };

/* A collection of the fleet, as CreateCollection at a router made it (and BuildIndex updated). */
typedef struct qv__fcoll {
  char name[QV__FLEET_NAME_MAX + 1];
  uint64_t uid; /* random per creation: a re-created name is a new collection */
  uint32_t shards, replicas, stream_replicas;
  uint32_t dim, default_nprobe, n_features;
  int metric, device; /* the quiver.v1 enum values */
  char spec[128];
  uint64_t train_sample;
  int deferred_deletes;
  /* The item attributes' schema (quiver/attrs.h): every replica's collection is created with it,
   * and a router checks the attribute columns it logs against it. */
  size_t n_attrs;
  qv_attr_field attrs[QV_MAX_ATTRS];
  /* BuildIndex requests so far, and the last one's parameters: a replica whose builds are behind
   * builds with them (a new replica too, once it has caught up). */
  uint64_t build_gen;
  double build_floor, build_target;
  uint32_t build_eval_queries, build_eval_k;
  /* The data version every query is answered from (the version pointer, docs/rollout.md): 1 at
   * create; a rollout's flip moves it in the same transaction as the rollout's state. */
  uint64_t version;
} qv__fcoll;

/* A replica's state: only in-sync replicas are sent searches. */
typedef enum { QV__REP_LOADING, QV__REP_CATCHING_UP, QV__REP_IN_SYNC } qv__rep_state;
const char *qv__rep_state_name(qv__rep_state s);

/* A replica as its node reports it. */
typedef struct qv__frep {
  uint64_t uid; /* the collection it belongs to (qv__fcoll.uid) */
  qv__rep_state state;
  uint64_t applied, log_seq, count, index_version, built_gen;
  char addr[256];
  char build_error[200]; /* the last build's failure ("" = none) */
  /* Data versions (docs/rollout.md): the one its local collection serves, and the one held
   * beside it: kind 1 staged (ready: caught up with the log and warmed; recall measured when it
   * was staged), 2 previous (after a flip). beside_version 0: none. */
  uint64_t version;
  uint64_t beside_version;
  int beside_kind, beside_ready;
  double beside_recall;
} qv__frep;

/* A fleet rollout (Rollout at a router): one per collection, kept after it ends (a replica
 * created later needs its version's files pushed: rollout --resume, and stage_seq). */
typedef enum {
  QV__RO_STAGING = 0,     /* the version's files go to every replica; it flips when all are ready */
  QV__RO_FLIPPED = 1,     /* the pointer moved; the previous version is still held */
  QV__RO_DONE = 2,        /* the previous version was released */
  QV__RO_ABORTED = 3,     /* dropped before a flip (by the caller, or a recall floor missed) */
  QV__RO_ROLLED_BACK = 4, /* flipped back to the previous version */
} qv__ro_state;
const char *qv__ro_state_name(int s);

typedef struct qv__froll {
  uint64_t uid;     /* the collection's (qv__fcoll.uid) */
  uint64_t version; /* the one being rolled out */
  uint64_t previous;
  int state;
  uint32_t shards;
  /* Each shard's write-log sequence when the rollout began: the version's snapshot is taken to
   * hold the writes up to it; a replica applies the records after it onto the staged version. */
  uint64_t stage_seq[QV__FLEET_MAX_SHARDS];
  uint32_t min_ready;  /* ready replicas each shard needs to flip; 0 = all its in-sync ones */
  double recall_floor; /* a staged replica's recall below it aborts the rollout; 0 = none */
  double hold_s;       /* the previous version is held this long after the flip */
  double flipped_at;   /* unix seconds (0 before the flip) */
  double begun_at;     /* unix seconds */
  char message[256];   /* why it ended (an abort's reason) */
} qv__froll;

char *qv__froll_json(const qv__froll *r);
qv_status qv__froll_parse(const char *json, size_t len, qv__froll *r, qv_error *err);

/* JSON text (free()) of a record; NULL when out of memory. */
char *qv__fcoll_json(const qv__fcoll *c);
qv_status qv__fcoll_parse(const char *json, size_t len, qv__fcoll *c, qv_error *err);
char *qv__frep_json(const qv__frep *r);
qv_status qv__frep_parse(const char *json, size_t len, qv__frep *r, qv_error *err);

/* The shard of an id: MurmurHash3's 64-bit finalizer of the id, modulo the shard count. */
uint32_t qv__fleet_shard_of(int64_t id, uint32_t shards);
/* "<name>.shard<k>": the collection a shard server keeps for its replica of shard k. */
void qv__fleet_local_name(const char *name, uint32_t shard, char *out, size_t cap);
/* "qv-<uid hex>-<k>": the JetStream stream (and subject) of shard k's write log. */
void qv__fleet_stream_name(uint64_t uid, uint32_t shard, char *out, size_t cap);

/* A write-log record: a tag byte ('U' an UpsertRequest, 'D' a DeleteRequest) and the packed
 * message, which names the fleet collection (the replica applies it to its local one). */
enum { QV__REC_UPSERT = 'U', QV__REC_DELETE = 'D' };

/* The parts of a --cluster value "etcd=A,B[,nats=nats://X,nats://Y]" (each list comma-joined
 * into its buffer; nats may come out empty). QV_EINVAL when it names no etcd or an unknown key. */
qv_status qv__cluster_parse(const char *cluster, char *etcd, size_t etcd_cap, char *nats,
                            size_t nats_cap, qv_error *err);

#endif

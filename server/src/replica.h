/* A shard server's replicas (--cluster with --role node): the replicas etcd assigns this node
 * are kept as local collections ("<name>.shard<k>"), fed in order from their shard's JetStream
 * write log, built when the collection's BuildIndex asks, and reported in etcd (state, applied
 * sequence, count, index version) on the node's lease. docs/cluster.md has the states. */
#ifndef QUIVER_SERVER_REPLICA_H
#define QUIVER_SERVER_REPLICA_H

#include "member.h"
#include "server.h"

typedef struct qv__replicas qv__replicas;

/* Starts the thread that follows this node's assignments. etcd, nats: the endpoint lists;
 * node, addr: this node's id and advertised address. */
qv_status qv__replicas_start(qv__replicas **out, qv__server *s, const qv__config *cfg,
                             qv__member *m, const char *etcd, const char *nats, const char *node,
                             const char *addr, qv_error *err);
/* Stops the thread (after the node left: its reports went with its lease). The local collections
 * and how far each got stay on disk for the next start. NULL is a no-op. */
void qv__replicas_stop(qv__replicas *r);

#endif

/* The router role (quiverd --role router --cluster ...): the same quiver.v1.Retrieval API over a
 * fleet of shard servers. Stateless: the shard map is read from etcd (polled every --map-poll-ms,
 * the last one kept while etcd is unreachable), writes go to each shard's JetStream log, searches
 * fan out to one in-sync replica of every shard and are merged. One router at a time is also the
 * controller (elected in etcd): it assigns replicas to shard servers and replaces lost ones.
 * docs/cluster.md has the whole design. */
#ifndef QUIVER_SERVER_ROUTER_H
#define QUIVER_SERVER_ROUTER_H

#include <grpc/grpc.h>

#include "config.h"
#include "quiver/status.h"

typedef struct qv__router qv__router;

/* Connects to etcd and starts reading the map. id: this router's name. */
qv_status qv__router_new(qv__router **out, const qv__config *cfg, const char *etcd,
                         const char *nats, const char *id, qv_error *err);
/* Registers the router (its lease also holds the controller key when it is elected) once it
 * serves at addr; the controller runs from then on. */
qv_status qv__router_join(qv__router *r, const char *addr, qv_error *err);
/* Leaves (lease revoked), stops the threads, closes the logs and channels. NULL is a no-op. */
void qv__router_free(qv__router *r);

#endif

/* Cluster membership of one quiverd node: its key /quiver/nodes/<id> in etcd, held by a lease
 * that a thread of its own refreshes, so that a node that dies leaves the cluster one lease
 * after, and one that stops leaves at once (the lease revoked before it stops answering). */
#ifndef QUIVER_SERVER_MEMBER_H
#define QUIVER_SERVER_MEMBER_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/status.h"

typedef struct qv__member qv__member;

/* Joins: registers id at addr under prefix (fleet.h: QV__FLEET_NODES for a shard server,
 * QV__FLEET_ROUTERS for a router) with a lease of lease_s seconds, then keeps it refreshed.
 * QV_EINVAL for a bad id or address; etcd's error when it cannot be reached (in time). */
qv_status qv__member_join(qv__member **out, const char *etcd, const char *prefix, const char *id,
                          const char *addr, int64_t lease_s, qv_error *err);
/* The lease the key is on now (a new one after an expiry): what else the node keeps in etcd for
 * as long as it lives (its replicas' reports, a router's controller key) goes on it too. */
int64_t qv__member_lease(qv__member *m);
/* Leaves: revokes the lease (the key goes at once) and stops the refresh thread. NULL is a no-op.
 */
void qv__member_leave(qv__member *m);

#endif

/* Cluster membership of one quiverd node: its key /quiver/nodes/<id> in etcd, held by a lease
 * that a thread of its own refreshes, so that a node that dies leaves the cluster one lease
 * after, and one that stops leaves at once (the lease revoked before it stops answering). */
#ifndef QUIVER_SERVER_MEMBER_H
#define QUIVER_SERVER_MEMBER_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/status.h"

typedef struct qv__member qv__member;

/* The etcd endpoints of a --cluster value ("etcd=A,B[,nats=X,Y]"), copied into out (cap bytes).
 * QV_EINVAL when it names no etcd or an unknown key. */
qv_status qv__cluster_etcd(const char *cluster, char *out, size_t cap, qv_error *err);

/* Joins: registers node id at addr with a lease of lease_s seconds, then keeps it refreshed.
 * QV_EINVAL for a bad id or address; etcd's error when it cannot be reached (in time). */
qv_status qv__member_join(qv__member **out, const char *etcd, const char *id, const char *addr,
                          int64_t lease_s, qv_error *err);
/* Leaves: revokes the lease (the key goes at once) and stops the refresh thread. NULL is a no-op.
 */
void qv__member_leave(qv__member *m);

#endif

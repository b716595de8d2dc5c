/* A client of etcd's v3 API (the cluster's coordination store: membership leases, the shard map,
 * replica states, the index version pointer), over gRPC's C core with protobuf-c messages
 * generated from etcd's own protos (proto/etcd). Synchronous calls; safe to share between
 * threads. One channel to all the given endpoints: a call waits (up to its deadline) for a member
 * to answer and is retried on another when the one it went to dies, so a killed member or a
 * leader election costs time, not an error, as long as a quorum is left. Keys and values are byte
 * strings; keys here are C strings. */
#ifndef QUIVER_ETCD_H
#define QUIVER_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/export.h"
#include "quiver/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qv_etcd qv_etcd;

/* endpoints: "host:port[,host:port...]" (e.g. "127.0.0.1:2379,127.0.0.1:22379"); timeout_ms: each
 * call's deadline (<= 0: 5000). QV_EINVAL for an empty or malformed list. */
QV_API qv_status qv_etcd_open(qv_etcd **out, const char *endpoints, int64_t timeout_ms,
                              qv_error *err);
QV_API void qv_etcd_close(qv_etcd *e);

/* Puts key = val (len bytes), attached to lease (0 = none). *rev (may be NULL): the store's
 * revision after the put. */
QV_API qv_status qv_etcd_put(qv_etcd *e, const char *key, const void *val, size_t len,
                             int64_t lease, int64_t *rev, qv_error *err);

/* Creates key = val only when key does not exist (one transaction on create_revision == 0), so
 * that of several racing callers exactly one gets *created = 1. Give a value only this caller
 * would write (e.g. its node id): a retry after a lost answer recognises its own create by it. */
QV_API qv_status qv_etcd_create(qv_etcd *e, const char *key, const void *val, size_t len,
                                int64_t lease, int *created, qv_error *err);

/* Puts every one of puts[0..n) in one transaction, only when each cmps[i].key's last
 * modification is revision cmps[i].mod_rev (0: that key does not exist): a compare-and-swap over
 * several keys (the fleet's version flip moves a collection's pointer and its rollout's state at
 * once). *done = 1 when it was applied (also a retry whose first attempt went through: every key
 * then holds its value). ncmp and n: 1 .. 8. */
typedef struct qv_etcd_kv {
  const char *key;
  const void *val;
  size_t len;
} qv_etcd_kv;
typedef struct qv_etcd_cmp {
  const char *key;
  int64_t mod_rev;
} qv_etcd_cmp;
QV_API qv_status qv_etcd_put_if(qv_etcd *e, const qv_etcd_cmp *cmps, size_t ncmp,
                                const qv_etcd_kv *puts, size_t n, int *done, qv_error *err);

/* The value of key: *val malloc'd and NUL-terminated (*len without the NUL; len may be NULL),
 * *mod_rev (may be NULL) its last modification's revision. QV_ENOTFOUND when absent. */
QV_API qv_status qv_etcd_get(qv_etcd *e, const char *key, char **val, size_t *len, int64_t *mod_rev,
                             qv_error *err);

/* Every key starting with prefix, in key order: fn(user, key, val, len) for each (return non-zero
 * to stop). *rev (may be NULL): the revision the read saw (a watch from rev + 1 misses nothing). */
typedef int (*qv_etcd_kv_fn)(void *user, const char *key, const char *val, size_t len);
QV_API qv_status qv_etcd_range_prefix(qv_etcd *e, const char *prefix, qv_etcd_kv_fn fn, void *user,
                                      int64_t *rev, qv_error *err);

/* Deletes key (prefix = 0) or every key starting with it (prefix = 1); *deleted (may be NULL):
 * how many. */
QV_API qv_status qv_etcd_delete(qv_etcd *e, const char *key, int prefix, int64_t *deleted,
                                qv_error *err);

/* A lease of ttl_s seconds: keys attached to it vanish when it is revoked or expires unrefreshed
 * (a node's membership). *ttl_granted (may be NULL): what etcd granted. */
QV_API qv_status qv_etcd_lease_grant(qv_etcd *e, int64_t ttl_s, int64_t *id, int64_t *ttl_granted,
                                     qv_error *err);
/* Refreshes a lease once (*ttl_left, may be NULL: seconds it now has). QV_ENOTFOUND when it has
 * expired or was revoked: its keys are gone. */
QV_API qv_status qv_etcd_lease_keepalive(qv_etcd *e, int64_t id, int64_t *ttl_left, qv_error *err);
/* Revokes a lease: its keys go at once (a clean leave). QV_ENOTFOUND when it no longer exists. */
QV_API qv_status qv_etcd_lease_revoke(qv_etcd *e, int64_t id, qv_error *err);

#ifdef __cplusplus
}
#endif

#endif

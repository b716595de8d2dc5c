/* One shard's replicated write log: a NATS JetStream stream (nats.c, Debian libnats-dev) with
 * R replicas. A write is appended only when JetStream has stored it on a quorum of its servers
 * (the acknowledgement a router waits for before answering an Upsert); every replica of the shard
 * reads the stream in order from the sequence after its snapshot's. Appends carry an id that
 * JetStream de-duplicates (within its window, 2 minutes by default), so a retried append after
 * a lost acknowledgement is not applied twice. Thread-safe for appends; a read is one caller's. */
#ifndef QUIVER_JSLOG_H
#define QUIVER_JSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/export.h"
#include "quiver/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qv_jslog qv_jslog;

/* Connects to servers ("nats://host:port[,nats://host:port...]"; reconnects to any of them
 * forever) and opens the stream `name` (subject = name), creating it with `replicas` replicas on
 * file storage when it does not exist. timeout_ms: each request's wait (<= 0: 5000); the open
 * retries while JetStream has no leader yet, up to that long. QV_EUNAVAILABLE when the servers
 * cannot be reached or JetStream does not answer; QV_EINVAL for a bad name or list. */
QV_API qv_status qv_jslog_open(qv_jslog **out, const char *servers, const char *name, int replicas,
                               int64_t timeout_ms, qv_error *err);
QV_API void qv_jslog_close(qv_jslog *l);

/* Appends one record (len bytes) and waits for JetStream's acknowledgement: *seq (may be NULL)
 * its sequence. msg_id (may be NULL: no de-duplication) names the record for de-duplication:
 * an append whose id the stream has seen returns the first one's sequence with *duplicate = 1
 * (duplicate may be NULL). Retries while the stream has no leader, up to the timeout. */
QV_API qv_status qv_jslog_append(qv_jslog *l, const void *rec, size_t len, const char *msg_id,
                                 uint64_t *seq, int *duplicate, qv_error *err);

/* The sequence of the last record stored (0 for an empty stream). */
QV_API qv_status qv_jslog_last_seq(qv_jslog *l, uint64_t *seq, qv_error *err);

/* Hands the records from sequence `from` on to fn(user, seq, rec, len), in order, until fn
 * returns non-zero or none arrives for wait_ms; *next (may be NULL): the sequence after the last
 * one handed (from when none was). */
typedef int (*qv_jslog_fn)(void *user, uint64_t seq, const void *rec, size_t len);
QV_API qv_status qv_jslog_read(qv_jslog *l, uint64_t from, int64_t wait_ms, qv_jslog_fn fn,
                               void *user, uint64_t *next, qv_error *err);

/* A reader kept open between calls (a replica applying its shard's stream as it grows): an
 * ordered consumer from `from`. One caller's. */
typedef struct qv_jslog_reader qv_jslog_reader;
QV_API qv_status qv_jslog_reader_open(qv_jslog *l, uint64_t from, qv_jslog_reader **out,
                                      qv_error *err);
/* Hands the next records to fn, in order: waits up to wait_ms for the first, then takes what has
 * arrived, up to max (0 = no limit), until fn returns non-zero. *handed (may be NULL): how many. */
QV_API qv_status qv_jslog_reader_next(qv_jslog_reader *r, int64_t wait_ms, size_t max,
                                      qv_jslog_fn fn, void *user, size_t *handed, qv_error *err);
QV_API void qv_jslog_reader_close(qv_jslog_reader *r);

/* Deletes the stream and its records (a dropped collection); QV_OK when it is already gone. */
QV_API qv_status qv_jslog_delete(qv_jslog *l, qv_error *err);

#ifdef __cplusplus
}
#endif

#endif

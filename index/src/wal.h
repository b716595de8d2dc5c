/* The write-ahead log of a collection (wal.c), private to index/. */
#ifndef QUIVER_INDEX_WAL_H
#define QUIVER_INDEX_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "quiver/collection.h"
#include "quiver/status.h"

/* The write-ahead log (wal.c): a pure log — open (scanning what it holds), append, rotate, close.
 * It knows no collection: at open it hands each record newer than a seq to the caller's
 * function (recover.c applies them). A replicated log (a stream consumer) fits the same shape. */
typedef struct qv__wal qv__wal;
/* One record as the scan hands it over: aligned copies, valid during the call. */
typedef struct qv__wal_record {
  uint64_t seq;
  int is_delete;
  size_t n, dim, nfeat; /* dim 0 for a delete; nfeat 0 = no features */
  const int64_t *ids;
  const float *vectors, *features; /* NULL for a delete; features NULL when nfeat == 0 */
  const char *attrs;               /* attribute columns (attrs.c's binary form) or NULL */
  size_t attrs_len;
} qv__wal_record;
/* What records must look like: an upsert of another dimension, or features of another count,
 * ends the log as damage would. */
typedef struct qv__wal_shape {
  size_t dim, nfeat;
} qv__wal_shape;
/* Applies one record; a failure stops the scan and fails the open. */
typedef qv_status (*qv__wal_apply_fn)(void *user, const qv__wal_record *rec, qv_error *err);
/* Opens DIR/wal.log (created when missing) and hands every record newer than after_seq to
 * apply, in seq order: first the segments of earlier snapshots (DIR/wal-v*.log), then the log.
 * A torn tail is cut; damage followed by whole records, a gap in the seqs or a damaged segment
 * fails the open with QV_ECORRUPT unless o->accept_loss (r says what was found). On failure
 * *out is NULL and what apply did must be thrown away by the caller. */
qv_status qv__wal_open(qv__wal **out, const char *dir, const qv_wal_opts *o,
                       const qv__wal_shape *shape, uint64_t after_seq, qv__wal_apply_fn apply,
                       void *user, qv_wal_replay *r, qv_error *err);
/* Appends one record (a delete when is_delete; features and attrs may be NULL) and syncs it per
 * policy. */
qv_status qv__wal_append(qv__wal *w, uint64_t seq, int is_delete, size_t n, size_t dim,
                         size_t nfeat, const int64_t *ids, const float *vectors,
                         const float *features, const void *attrs, size_t attrs_len, qv_error *err);
/* After a save made the log's records part of snapshot `version`: renames the log to that
 * version's segment (wal-vNNNNNN.log, kept for a fallback open of an older version) and starts
 * an empty one. */
qv_status qv__wal_rotate(qv__wal *w, uint64_t version, qv_error *err);
/* Removes DIR's log segment of `version` (its snapshot was pruned). */
void qv__wal_drop_segment(const char *dir, uint64_t version);
void qv__wal_close(qv__wal *w);
void qv__wal_figures(const qv__wal *w, uint64_t *bytes, uint64_t *records);

#endif

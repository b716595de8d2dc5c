/* Recovery: a collection catches up on its write-ahead log. The log (wal.c) hands over the
 * records newer than the opened snapshot; they are applied here through the normal write paths
 * (the log is not attached yet, so nothing is logged twice), then the log is attached and every
 * later write goes into it. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "quiver/dirformat.h"

static qv_status apply_record(void *user, const qv__wal_record *rec, qv_error *err) {
  qv_collection *c = user;
  qv_attr_batch attrs = {0};
  qv_status st = QV_OK;
  if (rec->attrs != NULL &&
      (st = qv__attrs_decode(&c->attrs, rec->attrs, rec->attrs_len, rec->n, &attrs, err)) != QV_OK)
    return st;
  st = rec->is_delete
           ? qv_collection_delete(c, rec->n, rec->ids, NULL, err)
           : qv_collection_upsert(c, rec->n, rec->ids, rec->vectors, rec->features, &attrs, err);
  qv_attr_batch_free(&attrs);
  if (st == QV_OK)
    c->wal_seq = rec->seq;
  return st;
}

qv_status qv_collection_wal_attach(qv_collection *c, const char *dir, const qv_wal_opts *o,
                                   qv_wal_replay *r, qv_error *err) {
  if (r != NULL)
    memset(r, 0, sizeof *r);
  if (c == NULL || dir == NULL)
    return qv_error_set(err, QV_EINVAL, "wal_attach: NULL argument");
  if (c->wal != NULL)
    return qv_error_set(err, QV_EPRECONDITION, "wal_attach: a log is attached already");
  if (strlen(dir) > QV_COLLECTION_DIR_MAX)
    return qv_error_set(err, QV_EINVAL, "wal_attach: directory path is too long");
  const qv__wal_shape shape = {c->dim, c->n_features};
  qv__wal *w = NULL;
  qv_status st = qv__wal_open(&w, dir, o, &shape, c->wal_seq, apply_record, c, r, err);
  if (st != QV_OK)
    return st; /* what was applied stays: the caller closes the collection */
  pthread_mutex_lock(&c->wmu);
  __atomic_store_n(&c->wal, w, __ATOMIC_RELEASE); /* stats read it without wmu */
  qv_path_fmt(c->wal_dir, NULL, "%s", dir);
  pthread_mutex_unlock(&c->wmu);
  return QV_OK;
}
